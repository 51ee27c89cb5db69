"""Training on data without a length (an ``IterableDataset``): ``max_steps`` steps in one long epoch,
pass after pass over the data, resumed exactly."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from lifecycle import ArgumentError, Trainer, TrainingArguments
from lifecycle.dispatch import CallbackError
from tests.support.helpers import Classifier, Examples
from tests.support.resume import Interrupt, Net, Points, assert_same_run


class Shuffled(torch.utils.data.IterableDataset[dict[str, torch.Tensor]]):
    """``examples`` in a new order each pass (``set_epoch``); counts the passes and what it yields."""

    def __init__(self, examples: torch.utils.data.Dataset[Any], size: int) -> None:
        self.examples, self.size = examples, size
        self.epoch = 0
        self.passes: list[int] = []
        self.yielded = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        self.passes.append(self.epoch)
        order = torch.randperm(self.size, generator=torch.Generator().manual_seed(self.epoch))
        for i in order.tolist():
            self.yielded += 1
            yield self.examples[i]


def arguments(out: Path, **changes: Any) -> TrainingArguments:
    settings: dict[str, Any] = {
        "output_dir": str(out),
        "max_steps": 8,
        "per_device_train_batch_size": 3,
        "gradient_accumulation_steps": 2,
        "logging_steps": 1,
        "disable_tqdm": True,
        "report_to": "none",
        **changes,
    }
    return TrainingArguments(**settings)


def test_max_steps_run_over_as_many_passes_as_they_take(tmp_path: Path) -> None:
    data = Shuffled(Examples(10), 10)  # a pass: batches of 3, 3, 3 and 1, two per step
    trainer = Trainer(Classifier(), arguments(tmp_path), train_dataset=data)
    trainer.train()
    assert trainer.state.global_step == 8 and data.yielded == 8 * 2 * 10 // 4
    assert data.passes == [0, 1, 2, 3]  # each pass told its number first, so it can reshuffle
    epochs = [e["epoch"] for e in trainer.state.log_history if "loss" in e]
    assert epochs == [step / 8 for step in range(1, 9)]  # the run is one epoch


def test_without_max_steps_the_error_names_it(tmp_path: Path) -> None:
    trainer = Trainer(Classifier(), arguments(tmp_path, max_steps=-1), train_dataset=Shuffled(Examples(4), 4))
    with pytest.raises(ArgumentError, match="max_steps: the training data has no length"):
        trainer.train()


def test_data_that_yields_nothing_is_an_error(tmp_path: Path) -> None:
    trainer = Trainer(Classifier(), arguments(tmp_path), train_dataset=Shuffled(Examples(4), 0))
    with pytest.raises(ValueError, match="a whole pass over it was empty"):
        trainer.train()


def test_evaluation_over_iterable_data_equals_the_mapped_one(tmp_path: Path) -> None:
    data = Examples(10, seed=5)
    trainer = Trainer(Classifier(), arguments(tmp_path, disable_tqdm=False), eval_dataset=data)
    mapped = trainer.evaluate()["eval_loss"]
    assert trainer.evaluate(Shuffled(data, 10))["eval_loss"] == pytest.approx(mapped, rel=1e-6)


def test_a_resume_inside_a_pass_is_exact(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    def trainer(out: Path, *callbacks: Any) -> Trainer:
        torch.manual_seed(0)
        data = Shuffled(Points(10, seed=1), 10)  # random jitter in every example
        args = arguments(out, save_strategy="steps", save_steps=1, logging_steps=2, max_steps=7)
        return Trainer(Net(), args, train_dataset=data, callbacks=list(callbacks))

    reference = trainer(tmp_path / "ref")
    reference.train()
    first = trainer(tmp_path / "run", Interrupt(3))  # step 3: pass 1, its second batch done
    with pytest.raises(CallbackError, match="interrupted"):
        first.train()
    resumed = trainer(tmp_path / "run")
    with caplog.at_level(logging.WARNING):
        resumed.train(resume_from_checkpoint=True)
    assert "dropping the 6 batches already trained on" in caplog.text
    assert_same_run(reference, resumed)
