"""The resume scenario: a small network with dropout trained on randomly augmented points, early stopping
on, a checkpoint every step; and what it takes to compare two runs of it bit for bit."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy
import torch

from lifecycle import EarlyStoppingCallback, TrainerCallback, TrainingArguments
from lifecycle.trainer import Trainer

TIMING = ("_runtime", "_per_second")


class Points(torch.utils.data.Dataset[dict[str, torch.Tensor]]):
    def __init__(self, n: int, seed: int, width: int = 6):
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, width, generator=g)
        self.y = (self.x[:, 0] + self.x[:, 1] > 0).long()

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        """With a random augmentation drawn from Python's and NumPy's generators."""
        jitter = 0.01 * (random.gauss(0, 1) + float(numpy.random.randn()))
        return {"x": self.x[i] + jitter, "labels": self.y[i]}


class Net(torch.nn.Module):
    def __init__(self, width: int = 6, hidden: int = 32, ballast: int = 0):
        super().__init__()
        self.body = torch.nn.Sequential(
            torch.nn.Linear(width, hidden), torch.nn.Dropout(0.3), torch.nn.ReLU(), torch.nn.Linear(hidden, 2)
        )
        # trained weights that make each checkpoint large, so that kills land inside its writing
        self.ballast = torch.nn.Parameter(torch.zeros(ballast))

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        logits = self.body(x) + self.ballast[:1].sum()
        out = {"logits": logits}
        if labels is not None:
            out["loss"] = torch.nn.functional.cross_entropy(logits, labels)
        return out


class Interrupt(TrainerCallback):
    """Raises right after the checkpoint of ``step`` is on disk: the process 'dies' there."""

    def __init__(self, step: int):
        self.step = step

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step == self.step:
            raise RuntimeError(f"interrupted after saving step {self.step}")


def arguments(output_dir: Path, **changes: Any) -> TrainingArguments:
    settings: dict[str, Any] = {
        "output_dir": str(output_dir),
        "num_train_epochs": 3,
        "per_device_train_batch_size": 3,
        "gradient_accumulation_steps": 2,
        "learning_rate": 0.05,
        "logging_steps": 3,
        "eval_strategy": "steps",
        "eval_steps": 2,
        "save_strategy": "steps",
        "save_steps": 1,
        "metric_for_best_model": "loss",
        "disable_tqdm": True,
        "seed": 7,
        **changes,
    }
    return TrainingArguments(**settings)


class CountingPoints(Points):
    """Points that count how many examples were loaded."""

    loaded = 0

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        CountingPoints.loaded += 1
        return super().__getitem__(i)


class ShuffledLoading(Trainer):
    """Trains from a plain shuffling DataLoader of its own (no EpochSampler, no state_dict)."""

    def get_train_dataloader(self) -> Any:
        batch = self.args.per_device_train_batch_size
        return torch.utils.data.DataLoader(self.train_dataset, batch_size=batch, shuffle=True)


class StatefulLoading(Trainer):
    """Trains from torchdata's StatefulDataLoader, which saves and restores its own position."""

    def get_train_dataloader(self) -> Any:
        from torchdata.stateful_dataloader import StatefulDataLoader

        batch = self.args.per_device_train_batch_size
        return StatefulDataLoader(self.train_dataset, batch_size=batch, shuffle=True)


LOADING = {"shuffled": ShuffledLoading, "stateful": StatefulLoading}


def trainer(
    output_dir: Path,
    *extra: TrainerCallback,
    train_size: int = 23,
    ballast: int = 0,
    loading: str | None = None,
    patience: int = 4,
    **changes: Any,
) -> Trainer:
    torch.manual_seed(0)
    return LOADING.get(loading or "", Trainer)(
        Net(ballast=ballast),
        arguments(output_dir, **changes),
        train_dataset=(CountingPoints if loading else Points)(train_size, seed=1),
        eval_dataset=Points(9, seed=2),
        callbacks=[
            EarlyStoppingCallback(early_stopping_patience=patience, early_stopping_threshold=0.02),
            *extra,
        ],
    )


def comparable(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Log entries without timings (``train_loss`` stays: a resumed run reports the whole run's)."""
    return [{k: v for k, v in entry.items() if not k.endswith(TIMING)} for entry in history]


def params(t: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in t.model.state_dict().items()}


def assert_same_run(a: Trainer, b: Trainer) -> None:
    pa, pb = params(a), params(b)
    assert pa.keys() == pb.keys()
    for name in pa:
        assert torch.equal(pa[name], pb[name]), f"parameter {name} differs"
    assert comparable(a.state.log_history) == comparable(b.state.log_history)
