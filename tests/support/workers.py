"""What the ``torchrun`` worker scripts in ``tests/scripts/`` share: their arguments, what a rank reports
of its training, and leaving the process group."""

from __future__ import annotations

import gc
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from lifecycle import TrainingArguments

__all__ = ["arguments", "leave_process_group", "trained"]


def arguments(out: Path, **changes: Any) -> TrainingArguments:
    """On the CPU (gloo) even where there is a GPU: batches of 4 per rank, learning rate 0.1, nothing
    reported, and ``changes``."""
    settings = {"per_device_train_batch_size": 4, "learning_rate": 0.1, "report_to": "none", **changes}
    return TrainingArguments(output_dir=str(out / "run"), disable_tqdm=True, use_cpu=True, **settings)


def trained(parameters: Iterable[torch.Tensor], log_history: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A rank's parameters and log history, as JSON data; the train summary (``train_loss``,
    ``train_runtime``, ...) covers one process's run and is left out."""
    return {
        "params": [p.detach().tolist() for p in parameters],
        "log_history": [{k: v for k, v in e.items() if not k.startswith("train_")} for e in log_history],
    }


def leave_process_group() -> None:
    """The trainer and its DistributedDataParallel go first, then the group they use, on every rank."""
    gc.collect()
    if torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
