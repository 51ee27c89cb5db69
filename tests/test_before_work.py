"""Mistakes are reported before any work: a lifecycle that cannot run is refused when declared, a
training that cannot do what its arguments ask is refused before its first batch, and a score that
is not a number never becomes the best."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch

from lifecycle import (
    TRAINING_LIFECYCLE,
    ArgumentError,
    LifecycleError,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)
from tests.support.helpers import Classifier, Examples


class CountSteps(TrainerCallback):
    def __init__(self) -> None:
        self.steps = 0

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.steps += 1


def test_a_guard_that_cannot_be_called_is_refused_when_declared() -> None:
    with pytest.raises(
        LifecycleError, match=r"transition 'swa' \(advance -> swa\): guard .* cannot be called"
    ):
        TRAINING_LIFECYCLE.extend(
            states=["swa"],
            transitions=[("swa", "advance", "swa", lambda state: True), ("back", "swa", "boundary")],
        )
    TRAINING_LIFECYCLE.extend(  # two and three parameters, and *args, are fine
        states=["a"],
        transitions=[
            ("to_a", "advance", "a", lambda s, c, a: True),
            ("from_a", "a", "boundary", lambda *anything: True),
            ("again", "a", "boundary"),
        ],
    )


def test_states_that_never_come_to_rest_are_refused_when_declared() -> None:
    with pytest.raises(LifecycleError, match="state 'ping' never comes to rest"):
        TRAINING_LIFECYCLE.extend(
            states=["ping", "pong"],
            transitions=[
                ("serve", "advance", "ping", "should_log"),
                ("hit", "ping", "pong"),
                ("back", "pong", "ping"),
            ],
        )


@pytest.mark.parametrize(
    ("arguments", "eval_dataset", "message"),
    [
        (
            {"eval_strategy": "steps", "eval_steps": 2},
            None,
            r"eval_strategy='steps' evaluates .* no eval_dataset",
        ),
        ({"eval_on_start": True}, None, r"eval_on_start=True evaluates"),
        (
            {"save_strategy": "best", "eval_strategy": "no"},
            Examples(4),
            r"save_strategy='best' .* never evaluates",
        ),
    ],
    ids=["eval-without-data", "eval-on-start-without-data", "best-without-evaluation"],
)
def test_arguments_the_data_cannot_serve_are_refused_before_the_first_step(
    tmp_path: Path, arguments: dict[str, Any], eval_dataset: Any, message: str
) -> None:
    counter = CountSteps()
    args = TrainingArguments(output_dir=str(tmp_path), max_steps=4, disable_tqdm=True, **arguments)
    trainer = Trainer(
        Classifier(), args, train_dataset=Examples(8), eval_dataset=eval_dataset, callbacks=[counter]
    )
    with pytest.raises(ArgumentError, match=message):
        trainer.train()
    assert counter.steps == 0 and not list(tmp_path.glob("checkpoint-*"))


@pytest.mark.parametrize(
    ("size", "drop_last"), [(0, False), (3, True)], ids=["empty", "drop-last-leaves-nothing"]
)
def test_training_data_without_a_batch_is_refused_before_the_first_step(
    tmp_path: Path, size: int, drop_last: bool
) -> None:
    counter = CountSteps()
    args = TrainingArguments(
        output_dir=str(tmp_path),
        per_device_train_batch_size=4,
        dataloader_drop_last=drop_last,
        disable_tqdm=True,
    )
    trainer = Trainer(Classifier(), args, train_dataset=Examples(size), callbacks=[counter])
    with pytest.raises(ArgumentError, match=r"empty|no batch"):
        trainer.train()
    assert counter.steps == 0


class ScoreScript:
    """compute_metrics returning a fixed sequence of scores, numpy and torch scalars among them."""

    def __init__(self, scores: list[Any]):
        self.scores = iter(scores)

    def __call__(self, prediction: Any) -> dict[str, Any]:
        return {"score": next(self.scores)}


def test_a_nan_score_never_becomes_the_best_and_scalar_types_are_numbers(tmp_path: Path) -> None:
    numpy = pytest.importorskip("numpy")
    scores = [float("nan"), numpy.float32(0.5), torch.tensor(0.7), numpy.float64(0.6)]
    args = TrainingArguments(
        output_dir=str(tmp_path),
        max_steps=8,
        eval_strategy="steps",
        eval_steps=2,
        save_steps=2,
        metric_for_best_model="score",
        load_best_model_at_end=True,
        disable_tqdm=True,
    )
    trainer = Trainer(
        Classifier(),
        args,
        train_dataset=Examples(8),
        eval_dataset=Examples(4, seed=1),
        compute_metrics=ScoreScript(scores),
    )
    trainer.train()
    assert trainer.state.best_metric == pytest.approx(0.7) and trainer.state.best_global_step == 6
    assert trainer.state.best_model_checkpoint is not None
    assert trainer.state.best_model_checkpoint.endswith("checkpoint-6")
    logged = [e["eval_score"] for e in trainer.state.log_history if "eval_score" in e]
    assert math.isnan(logged[0]) and all(type(v) is float for v in logged)


def test_a_best_metric_the_evaluation_does_not_produce_names_the_ones_it_does(tmp_path: Path) -> None:
    args = TrainingArguments(
        output_dir=str(tmp_path),
        max_steps=4,
        eval_strategy="steps",
        eval_steps=2,
        metric_for_best_model="accuracy",
        disable_tqdm=True,
    )
    trainer = Trainer(Classifier(), args, train_dataset=Examples(8), eval_dataset=Examples(4, seed=1))
    with pytest.raises(
        KeyError, match=r"'eval_accuracy' is not among the evaluation metrics \[.*'eval_loss'"
    ):
        trainer.train()
    assert trainer.state.global_step == 2  # the first evaluation
