"""The step arithmetic: ``plan_steps`` against transformers' own, and its intervals and errors."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch

from lifecycle.args import ArgumentError, TrainingArguments
from lifecycle.plan import plan_steps, steps_of
from tests.support.helpers import Classifier

transformers = pytest.importorskip("transformers")

CASES = [  # batches per epoch, gradient accumulation, max_steps, num_train_epochs
    (10, 1, -1, 3.0),
    (10, 3, -1, 3.0),  # a remainder window still makes a step
    (10, 4, -1, 2.5),  # fractional epochs
    (7, 2, -1, 0.3),
    (10, 1, 25, 3.0),  # max_steps wins
    (10, 3, 9, 1.0),
    (1, 8, -1, 2.0),  # fewer batches than the window
    (12, 4, 3, 5.0),
]


@pytest.mark.parametrize(("batches", "accumulation", "max_steps", "epochs"), CASES)
def test_steps_and_epochs_equal_transformers(
    tmp_path: Path, batches: int, accumulation: int, max_steps: int, epochs: float
) -> None:
    arguments: dict[str, Any] = {
        "output_dir": str(tmp_path),
        "gradient_accumulation_steps": accumulation,
        "max_steps": max_steps,
        "num_train_epochs": epochs,
    }
    hf_args = transformers.TrainingArguments(**arguments, report_to="none", use_cpu=True)
    hf = transformers.Trainer(model=Classifier(), args=hf_args)
    loader = torch.utils.data.DataLoader(list(range(batches)), batch_size=1)
    hf_epochs, hf_updates, *_, hf_max_steps = hf.set_initial_training_values(hf_args, loader)

    plan = plan_steps(TrainingArguments(**arguments), batches)
    assert (plan.num_train_epochs, plan.updates_per_epoch, plan.max_steps) == (
        hf_epochs,
        hf_updates,
        hf_max_steps,
    )
    assert plan.batches_per_epoch == batches and not plan.streaming


def test_intervals_below_one_are_fractions_of_max_steps(tmp_path: Path) -> None:
    args = TrainingArguments(
        output_dir=str(tmp_path), max_steps=40, logging_steps=0.25, save_steps=0.1, eval_strategy="steps"
    )
    plan = plan_steps(args, 100)
    assert (plan.logging_steps, plan.eval_steps, plan.save_steps) == (10, 10, 4)
    assert steps_of(7, 40) == 7 and steps_of(0.33, 10) == math.ceil(3.3)


def test_data_without_a_length_is_one_epoch_of_max_steps(tmp_path: Path) -> None:
    plan = plan_steps(
        TrainingArguments(output_dir=str(tmp_path), max_steps=6, gradient_accumulation_steps=2), None
    )
    assert plan.streaming
    assert (plan.batches_per_epoch, plan.updates_per_epoch, plan.max_steps, plan.num_train_epochs) == (
        12,
        6,
        6,
        1,
    )


def test_data_without_a_length_needs_max_steps(tmp_path: Path) -> None:
    with pytest.raises(ArgumentError, match="max_steps: the training data has no length"):
        plan_steps(TrainingArguments(output_dir=str(tmp_path), num_train_epochs=2), None)
