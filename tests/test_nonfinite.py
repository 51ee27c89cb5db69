"""Non-finite losses and gradient norms: found without a host sync between logs, and each policy does
what it says (stop, skip, warn); a window of nothing but nan logs nan."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from lifecycle import ArgumentError, NonFiniteError, Trainer, TrainingArguments
from lifecycle.checkpoint.contents import WEIGHTS_FILE
from lifecycle.loss import LossTally
from lifecycle.nonfinite import Census, NonFiniteWatch
from tests.support.helpers import Classifier, Examples
from tests.test_trainer import HostSyncs


class Poisoned(Classifier):
    """A classifier whose training forward multiplies its logits by nan from micro-batch ``bad`` on
    (counting from 1), or only there with ``once``."""

    def __init__(self, bad: int, once: bool = False) -> None:
        super().__init__()
        self.bad, self.once, self.calls = bad, once, 0

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        if self.training:
            self.calls += 1
            if self.calls == self.bad or (self.calls > self.bad and not self.once):
                x = x * float("nan")
        return super().forward(x, labels)


def trainer(tmp_path: Path, model: torch.nn.Module, **changes: Any) -> Trainer:
    settings: dict[str, Any] = {
        "per_device_train_batch_size": 4,
        "disable_tqdm": True,
        "learning_rate": 0.1,
        "max_steps": 8,
        "save_strategy": "no",
    }
    settings.update(changes)
    return Trainer(model, TrainingArguments(str(tmp_path), **settings), train_dataset=Examples(64))


def checkpoints(tmp_path: Path) -> list[int]:
    return sorted(int(p.name.split("-")[1]) for p in tmp_path.glob("checkpoint-*"))


def test_stop_names_the_step_and_what_and_saves_no_poisoned_weights(tmp_path: Path) -> None:
    run = trainer(tmp_path, Poisoned(bad=5), logging_steps=3, save_strategy="steps", save_steps=2)
    with pytest.raises(NonFiniteError) as caught:
        run.train()
    message = str(caught.value)
    assert "between step 4 and step 6 (found at the log)" in message
    assert "loss: 2 nan, the first at step 5" in message
    assert "gradient norm: 2 nan, the first at step 5" in message
    assert checkpoints(tmp_path) == [2, 4]  # the save at step 6 comes after the log that stopped
    weights = load_file(str(tmp_path / "checkpoint-4" / WEIGHTS_FILE))
    assert all(torch.isfinite(w).all() for w in weights.values())
    assert [h["step"] for h in run.state.log_history if "loss" in h] == [3]  # nothing logged at 6


def test_stop_before_a_save_writes_nothing(tmp_path: Path) -> None:
    run = trainer(tmp_path, Poisoned(bad=4), logging_steps=10, save_strategy="steps", save_steps=1)
    with pytest.raises(
        NonFiniteError, match=r"after step 3 \(found before saving\): loss: 1 nan, the first at"
    ):
        run.train()
    assert checkpoints(tmp_path) == [1, 2, 3]
    weights = load_file(str(tmp_path / "checkpoint-3" / WEIGHTS_FILE))
    assert all(torch.isfinite(w).all() for w in weights.values())


def test_stop_finds_the_exact_step_of_a_loss_inside_accumulation_windows(tmp_path: Path) -> None:
    # micro-batches 1-2 are step 1, ..., 7-8 step 4; unclipped, only the loss is watched
    run = trainer(tmp_path, Poisoned(bad=7), gradient_accumulation_steps=2, max_grad_norm=0, logging_steps=6)
    with pytest.raises(
        NonFiniteError,
        match=r"between step 0 and step 6 .*: loss: 6 nan, the first at step 4\. Training stopped",
    ):
        run.train()


def test_stop_at_the_end_when_no_log_or_save_came_after(tmp_path: Path) -> None:
    run = trainer(tmp_path, Poisoned(bad=8), logging_strategy="no")
    with pytest.raises(NonFiniteError, match=r"between step 0 and step 8 \(found at the end of training\)"):
        run.train()


def test_skip_keeps_the_weights_finite_and_the_step_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    model = Poisoned(bad=3, once=True)
    run = trainer(tmp_path, model, nonfinite="skip", logging_steps=1, save_strategy="steps", save_steps=4)
    with caplog.at_level(logging.WARNING, logger="lifecycle.nonfinite"):
        run.train()
    assert run.state.global_step == 8
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert [r.getMessage() for r in caplog.records] == [
        "step 3 skipped (nonfinite='skip'): its loss is not finite"
    ]
    losses = {h["step"]: h["loss"] for h in run.state.log_history if "loss" in h}
    assert math.isnan(losses[3]) and all(math.isfinite(v) for s, v in losses.items() if s != 3)
    assert checkpoints(tmp_path) == [4, 8]


def test_skip_does_not_step_the_optimizer(tmp_path: Path) -> None:
    def weights_after(bad: int) -> torch.Tensor:
        model = Poisoned(bad=bad, once=True)
        trainer(
            tmp_path / str(bad),
            model,
            nonfinite="skip",
            max_steps=3,
            lr_scheduler_type="constant",
            max_grad_norm=0,
        ).train()
        return model.linear.weight.detach().clone()

    # AdamW, constant rate, unclipped: a skipped third step leaves the weights (and moments) of two steps
    two = trainer(tmp_path / "two", Classifier(), max_steps=2, lr_scheduler_type="constant", max_grad_norm=0)
    two.train()
    torch.testing.assert_close(weights_after(3), two.model.linear.weight.detach())


def test_warn_keeps_training_and_logs_nan_not_zero(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    run = trainer(tmp_path, Poisoned(bad=3), nonfinite="warn", logging_steps=2)
    with caplog.at_level(logging.WARNING, logger="lifecycle.nonfinite"):
        run.train()
    assert run.state.global_step == 8
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0] == (
        "non-finite values between step 2 and step 4 (found at the log): loss: 2 nan, the first at step 3; "
        "gradient norm: 2 nan, the first at step 3"
    )
    assert len(messages) == 3  # one per check that found any: the logs at 4, 6 and 8
    losses = [h["loss"] for h in run.state.log_history if "loss" in h]
    assert math.isfinite(losses[0]) and all(math.isnan(v) for v in losses[1:])


def test_a_window_with_some_finite_losses_keeps_the_filter() -> None:
    tally = LossTally(torch.device("cpu"), nan_inf_filter=True)
    for value in (1.0, float("inf"), 3.0):
        tally.add(torch.tensor(value))
    assert tally.drain() == 6.0  # the inf counts as the mean of the finite ones
    tally.add(torch.tensor(float("nan")))
    assert math.isnan(tally.drain())  # nothing finite to stand in: nan, never 0.0


def test_the_census_counts_on_the_device_and_keeps_the_first_index() -> None:
    census = Census(torch.device("cpu"))
    census.count(torch.tensor([1.0, 2.0]))
    census.count(torch.tensor([float("inf"), 1.0, float("nan"), float("nan")]))
    assert census.counts.tolist() == [2, 1, 2] and census.seen == 6


def test_the_counts_are_read_once_per_log_or_save_never_between(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checks: list[int] = []
    original = NonFiniteWatch.check

    def check(self: NonFiniteWatch, step: int, where: str) -> Any:
        checks.append(step)
        return original(self, step, where)

    monkeypatch.setattr(NonFiniteWatch, "check", check)
    run = trainer(tmp_path, Classifier(), logging_steps=4, save_strategy="steps", save_steps=3)
    with HostSyncs() as syncs:
        run.train()
    assert checks == [3, 4, 6, 8, 8, 8]  # saves at 3, 6 and 8 (the last step), logs at 4 and 8, the end
    assert sum(c == "tolist in check" for c in syncs.calls) == len(checks)
    assert [c for c in syncs.calls if "check" in c and c != "tolist in check"] == []


def test_the_policy_is_checked() -> None:
    assert TrainingArguments().nonfinite == "stop"
    with pytest.raises(
        ArgumentError, match=r"TrainingArguments.nonfinite: must be one of .*did you mean 'skip'"
    ):
        TrainingArguments(nonfinite="skipp")
