"""One tiny training run under transformers.Trainer and under lifecycle.Trainer, with the same callback,
and what to compare between what the two runs left in a tracker's files."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs
import pytest

from lifecycle import TrainingArguments
from lifecycle.transformers_fields import UNSUPPORTED
from tests.support.helpers import Classifier, Examples

#: the two trainers, by the name of their runs
LIBRARIES = ("transformers", "lifecycle")

#: metrics that measure time: their names and steps are compared, their values are not
TIMED = ("runtime", "per_second", "duration")

#: settings both runs share, compared where a tracker stores them
SHARED_SETTINGS = {
    "num_train_epochs": 2,
    "per_device_train_batch_size": 4,
    "logging_steps": 2,
    "eval_strategy": "epoch",
    "save_strategy": "no",
    "learning_rate": 5e-5,
    "seed": 42,
}

Points = dict[tuple[str, int], list[float]]


def train(library_name: str, out: Path, callback: Any) -> Any:
    """10 optimizer steps over 2 epochs, a log every 2 steps, an evaluation per epoch, ``callback``
    added; ``report_to="none"`` for the trainer's own reporting."""
    import transformers

    import lifecycle

    library: Any = transformers if library_name == "transformers" else lifecycle
    extra = {"use_cpu": True} if library is transformers else {}
    args = library.TrainingArguments(
        output_dir=os.fspath(out), report_to="none", disable_tqdm=True, **SHARED_SETTINGS, **extra
    )
    trainer = library.Trainer(
        model=Classifier(features=8),
        args=args,
        train_dataset=Examples(20, features=8),
        eval_dataset=Examples(8, seed=1, features=8),
        callbacks=[callback],
    )
    trainer.train()
    return trainer


def points(rows: Iterable[tuple[str, int, float]]) -> Points:
    """``(name, step) -> values`` (a step may hold several: an evaluation at the last training step)."""
    found: Points = {}
    for name, step, value in rows:
        found.setdefault((name, int(step)), []).append(float(value))
    return found


def assert_same_points(theirs: Points, ours: Points) -> None:
    """The same metric names at the same steps; the same values but for timings (training is identical)."""
    assert sorted(ours) == sorted(theirs)
    assert {"train/loss", "eval/loss"} <= {name for name, _ in ours}
    for key, values in theirs.items():
        if not any(word in key[0] for word in TIMED):
            assert ours[key] == pytest.approx(values, rel=1e-6), key


def _same(a: Any, b: Any) -> bool:
    """Equal, as text or as numbers (``2`` and ``2.0``)."""
    if str(a) == str(b):
        return True
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return False


def assert_same_config(theirs: Mapping[str, Any], ours: Mapping[str, Any]) -> None:
    """Our run's configuration holds every argument of ours; transformers' holds besides only the
    arguments this library does not support; the settings both runs share are stored alike."""
    assert set(attrs.fields_dict(TrainingArguments)) <= set(ours)
    assert set(theirs) - set(ours) <= set(UNSUPPORTED)
    for key in SHARED_SETTINGS:
        assert _same(ours[key], theirs[key]), (key, ours[key], theirs[key])
