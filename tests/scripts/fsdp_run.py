"""One rank of an FSDP2 (or, to compare, DDP) run, started by ``torchrun`` from tests/test_fsdp.py with the
checkout on ``PYTHONPATH``: ``fsdp_run.py OUT SETTINGS_JSON``.

``SETTINGS_JSON`` keys: ``fsdp_config`` (null: DDP), ``max_steps``, ``save_steps``, ``resume`` (a path,
true, or null), ``die_at`` (the process exits, unclean, right after the save of that step),
``save_model`` (the final weights saved with ``Trainer.save_model`` into ``OUT/final``).
The run evaluates every three steps (three batches over two ranks: one runs an extra, for the
sharded model's collectives). Each rank writes ``OUT/rank<r>.json``: its logged losses and metrics,
the full weights at the end and at each save, and as training began (after a resume: as loaded).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

from lifecycle import Trainer, TrainerCallback, TrainingArguments
from tests.support.helpers import Examples
from tests.support.workers import leave_process_group


class Block(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.linear(x))


class Net(torch.nn.Module):
    """Two blocks (sharded as units of their own, as transformers' layers are) with dropout, so what it
    learns depends on every rank's random draws."""

    _no_split_modules: ClassVar[list[str]] = ["Block"]

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = torch.nn.Linear(4, 8)
        self.blocks = torch.nn.ModuleList([Block(), Block()])
        self.dropout = torch.nn.Dropout(0.2)
        self.head = torch.nn.Linear(8, 2)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.embed(x)
        for block in self.blocks:
            h = block(h)
        return {"loss": torch.nn.functional.cross_entropy(self.head(self.dropout(h)), labels)}


def full(model: torch.nn.Module) -> dict[str, list[Any]]:
    """The full weights as lists (every rank gathers them; a plain model's are its own)."""
    weights = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True))
    return {k: v.tolist() for k, v in weights.items()}


class Record(TrainerCallback):
    """The weights as training begins and at each save; the process dies after the save of ``die_at``."""

    def __init__(self, die_at: int | None) -> None:
        self.began: dict[str, Any] = {}
        self.saved: dict[int, Any] = {}
        self.die_at = die_at

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kw: Any) -> None:
        self.began = full(model)

    def on_save(self, args: Any, state: Any, control: Any, model: Any = None, **kw: Any) -> None:
        self.saved[state.global_step] = full(model)
        if state.global_step == self.die_at:
            os._exit(3)  # killed: no cleanup, nothing waited for


class SeedPerRank(TrainerCallback):
    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        torch.manual_seed(1000 + int(os.environ.get("RANK", "0")))


def main(out: Path, settings: dict[str, Any]) -> None:
    rank = int(os.environ.get("RANK", "0"))
    fsdp_config = settings.get("fsdp_config")
    args = TrainingArguments(
        output_dir=str(out / "run"),
        disable_tqdm=True,
        use_cpu=True,
        report_to="none",
        per_device_train_batch_size=4,
        learning_rate=0.05,
        max_steps=settings.get("max_steps", 6),
        logging_steps=1,
        save_strategy="steps",
        save_steps=settings.get("save_steps", 2),
        eval_strategy="steps",
        eval_steps=3,
        per_device_eval_batch_size=8,
        max_grad_norm=0.2,  # below most steps' norms: clipping is at work
        fsdp=fsdp_config is not None,
        fsdp_config=fsdp_config,
        bf16=settings.get("bf16", False),
    )
    record = Record(settings.get("die_at"))
    data = {"train_dataset": Examples(64), "eval_dataset": Examples(20, seed=1)}  # 3 batches: 2 + 1 per rank
    trainer = Trainer(Net(), args, **data, callbacks=[SeedPerRank(), record])
    trainer.train(resume_from_checkpoint=settings.get("resume"))
    if settings.get("save_model"):
        trainer.save_model(str(out / "final"))
    timing = ("train_", "eval_runtime", "eval_samples_per_second", "eval_steps_per_second")  # clocks differ
    history = [{k: v for k, v in e.items() if not k.startswith(timing)} for e in trainer.state.log_history]
    result = {
        "began": record.began,
        "saved": record.saved,
        "params": full(trainer.model),
        "log_history": history,
        "sharded": type(trainer.model).__name__.startswith("FSDP"),
    }
    (out / f"rank{rank}.json").write_text(json.dumps(result))


if __name__ == "__main__":
    torch.set_num_threads(1)
    main(Path(sys.argv[1]), json.loads(sys.argv[2]))
    leave_process_group()
