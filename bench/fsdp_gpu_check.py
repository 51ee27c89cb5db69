"""The FSDP2 path on whatever this machine has: CUDA with nccl when a GPU is present, else the CPU with gloo.

    torchrun --nproc-per-node 1 bench/fsdp_gpu_check.py [OUT]     # or as many ranks as GPUs

Each check trains a small model a few steps through ``lifecycle.Trainer`` with ``fsdp=True`` and prints
one line, ``ok`` or ``FAIL`` and why; the exit status is the number of failures. What is checked:
sharded checkpoints (sync and ``async_save``) resume bit for bit; ``FULL_STATE_DICT`` checkpoints and
``save_model`` hold the full weights; bf16 (and, on CUDA, fp16 with the sharded grad scaler) train with
finite losses and float32 master weights; activation checkpointing and ``shard_grad_op`` train the same
numbers as the plain run, and so does ``cpu_offload`` (on the CPU: nothing to move).
"""

from __future__ import annotations

import math
import os
import sys
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

from lifecycle import Trainer, TrainerCallback, TrainingArguments

CUDA = torch.cuda.is_available()
RANK = int(os.environ.get("RANK", "0"))


class Data(torch.utils.data.Dataset[dict[str, torch.Tensor]]):
    def __init__(self, n: int = 256) -> None:
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 32, generator=g)
        self.y = (self.x.sum(1) > 0).long()

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"x": self.x[i], "labels": self.y[i]}


class Layer(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.ff = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.GELU(), torch.nn.Linear(256, 64))
        self.norm = torch.nn.LayerNorm(64)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.norm(h + self.ff(h))


class Model(torch.nn.Module):
    _no_split_modules = ("Layer",)

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = torch.nn.Linear(32, 64)
        self.layers = torch.nn.ModuleList([Layer() for _ in range(3)])
        self.head = torch.nn.Linear(64, 2)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.embed(x)
        for layer in self.layers:
            h = layer(h)
        return {"loss": torch.nn.functional.cross_entropy(self.head(h), labels)}


class Watch(TrainerCallback):
    """The dtype of the sharded parameters and the losses, as training goes."""

    def __init__(self) -> None:
        self.dtypes: set[torch.dtype] = set()

    def on_step_end(self, args: Any, state: Any, control: Any, model: Any = None, **kw: Any) -> None:
        self.dtypes.update(p.dtype for p in model.parameters())


def full(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def train(out: Path, resume: Any = None, **settings: Any) -> tuple[Trainer, Watch]:
    config = settings.pop("fsdp_config", {})
    args = TrainingArguments(
        output_dir=str(out), use_cpu=not CUDA, report_to="none", disable_tqdm=True, max_steps=4,
        per_device_train_batch_size=16, learning_rate=1e-3, logging_steps=1, save_steps=2,
        fsdp=True, fsdp_config=config, **settings,
    )  # fmt: skip
    watch = Watch()
    trainer = Trainer(Model(), args, train_dataset=Data(), callbacks=[watch])
    trainer.train(resume_from_checkpoint=resume)
    return trainer, watch


def losses(trainer: Trainer) -> list[float]:
    return [e["loss"] for e in trainer.state.log_history if "loss" in e]


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def resumes_exactly(root: Path, config: dict[str, Any]) -> str | None:
    straight, _ = train(root / "straight", fsdp_config=config)
    resumed, _ = train(root / "resumed", resume=str(root / "straight" / "checkpoint-2"), fsdp_config=config)
    if not same(full(straight.model), full(resumed.model)):
        return "the resumed run's weights differ from the uninterrupted run's"
    return None if losses(straight)[2:] == losses(resumed)[2:] else "the resumed losses differ"


def check_sharded(root: Path) -> str | None:
    return resumes_exactly(root, {"state_dict_type": "SHARDED_STATE_DICT"})


def check_async(root: Path) -> str | None:
    return resumes_exactly(root, {"state_dict_type": "SHARDED_STATE_DICT", "async_save": True})


def check_full_state_dict(root: Path) -> str | None:
    trainer, _ = train(root, fsdp_config={"state_dict_type": "FULL_STATE_DICT"})
    trainer.save_model(str(root / "final"))
    weights = full(trainer.model)
    if RANK == 0 and not same(load_file(str(root / "final" / "model.safetensors")), weights):
        return "save_model did not write the full weights"
    if RANK == 0 and not same(load_file(str(root / "checkpoint-4" / "model.safetensors")), weights):
        return "checkpoint-4 does not hold the full weights"
    return None


def mixed(root: Path, precision: str) -> str | None:
    trainer, watch = train(root, **{precision: True})
    if watch.dtypes != {torch.float32}:
        return f"the sharded (master) parameters are {watch.dtypes}, not float32"
    values = losses(trainer)
    return None if all(math.isfinite(v) for v in values) else f"losses {values}"


def check_bf16(root: Path) -> str | None:
    return mixed(root, "bf16")


def check_fp16(root: Path) -> str | None:
    return mixed(root, "fp16") if CUDA else "fp16 needs CUDA"


def same_losses_as_plain(root: Path, config: dict[str, Any]) -> str | None:
    plain, _ = train(root / "plain")
    other, _ = train(root / "other", fsdp_config=config)
    a, b = losses(plain), losses(other)
    return None if all(math.isclose(x, y, rel_tol=1e-5) for x, y in zip(a, b, strict=True)) else f"{a} vs {b}"


def check_activation_checkpointing(root: Path) -> str | None:
    return same_losses_as_plain(root, {"activation_checkpointing": True})


def check_shard_grad_op(root: Path) -> str | None:
    return same_losses_as_plain(root, {"reshard_after_forward": False})


def check_cpu_offload(root: Path) -> str | None:
    return same_losses_as_plain(root, {"cpu_offload": True})


CHECKS: list[Callable[[Path], str | None]] = [
    check_sharded, check_async, check_full_state_dict, check_bf16, check_fp16,
    check_activation_checkpointing, check_shard_grad_op, check_cpu_offload,
]  # fmt: skip


def main(root: Path) -> int:
    torch.set_num_threads(1)
    where = f"CUDA ({torch.cuda.get_device_name()}), nccl" if CUDA else "the CPU, gloo"
    if RANK == 0:
        print(
            f"FSDP2 checks on {where}, {os.environ.get('WORLD_SIZE', '1')} rank(s), torch {torch.__version__}"
        )
    failures = 0
    for check in CHECKS:
        try:
            problem = check(root / check.__name__)
        except Exception:
            problem = traceback.format_exc()
        skipped = problem is not None and problem.endswith("needs CUDA")
        failures += problem is not None and not skipped
        if RANK == 0:
            print(f"{'ok  ' if problem is None else 'skip' if skipped else 'FAIL'} {check.__name__}"
                  f"{'' if problem is None else ': ' + problem}", flush=True)  # fmt: skip
    return failures


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="fsdp-check-"))
    status = main(out)
    if torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    sys.exit(status)
