"""Shared pieces of the tracker tests: a tiny real model and data, a recording tracker, read-back helpers."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from lifecycle import Trainer, TrainingArguments
from lifecycle.integrations import GeneralTracker
from tests.support.helpers import Classifier, Examples


def make_trainer(output_dir: Path | str, report_to: Any = None, **kwargs: Any) -> Trainer:
    """10 optimizer steps over 2 epochs, a log every 2 steps, an evaluation per epoch: 8 logs in all."""
    trainer_keys = ("callbacks", "compute_metrics")
    trainer_kwargs = {k: kwargs.pop(k) for k in trainer_keys if k in kwargs}
    settings: dict[str, Any] = {
        "num_train_epochs": 2,
        "per_device_train_batch_size": 4,
        "logging_steps": 2,
        "eval_strategy": "epoch",
        "save_strategy": "no",
        "disable_tqdm": True,
        **kwargs,
    }
    args = TrainingArguments(output_dir=os.fspath(output_dir), report_to=report_to, **settings)
    return Trainer(
        Classifier(features=8),
        args,
        train_dataset=Examples(20, features=8),
        eval_dataset=Examples(8, seed=1, features=8),
        **trainer_kwargs,
    )


def tag_of(key: str) -> str:
    """The name trackers give a logged key: ``eval_loss`` -> ``eval/loss``, ``loss`` -> ``train/loss``."""
    for prefix in ("eval_", "test_"):
        if key.startswith(prefix):
            return prefix[:-1] + "/" + key[len(prefix) :]
    return "train/" + key


def expected_points(log_history: list[dict[str, Any]]) -> dict[tuple[str, int], float]:
    """``(tracker tag, step) -> value`` for every number in ``log_history``, named as trackers name them."""
    points = {}
    for entry in log_history:
        step = entry["step"]
        for key, value in entry.items():
            if key == "step" or isinstance(value, str):
                continue
            points[(tag_of(key), step)] = float(value)
    return points


def close(a: float, b: float) -> bool:
    """Equal as TensorBoard stores them (float32)."""
    return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-12)


class Recorder(GeneralTracker):
    """A tracker that keeps what it receives, in memory."""

    name = "recorder"
    requires_logging_directory = False

    def __init__(self, run_name: str | None = None):
        self.run_name = run_name
        self.config: dict[str, Any] | None = None
        self.rows: list[tuple[int | None, dict[str, Any]]] = []
        self.finished = 0

    @property
    def tracker(self) -> list[tuple[int | None, dict[str, Any]]]:
        return self.rows

    def store_init_configuration(self, values: dict[str, Any]) -> None:
        self.config = values

    def log(self, values: dict[str, Any], step: int | None = None, **kwargs: Any) -> None:
        self.rows.append((step, values))

    def finish(self) -> None:
        self.finished += 1

    def points(self) -> dict[tuple[str, int], float]:
        return {(tag, step): v for step, row in self.rows for tag, v in row.items() if not isinstance(v, str)}


def checkpoint_history(checkpoint: Path) -> list[dict[str, Any]]:
    """The ``log_history`` a checkpoint holds: what a training resumed from it does not log again."""
    history: list[dict[str, Any]] = json.loads((checkpoint / "trainer_state.json").read_text())["log_history"]
    return history
