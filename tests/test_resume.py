"""Stop a run, resume it, and get the uninterrupted run's parameters and log history bit for bit.

The SIGKILL test trains the same scenario in processes of their own (``tests/scripts/resume_run.py``),
kills them at random moments and compares what the last one leaves with a clean run.
"""

from __future__ import annotations

import io
import json
import logging
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from lifecycle import EarlyStoppingCallback, TrainerCallback, on
from lifecycle.checkpoint import list_checkpoints, newest_valid_checkpoint
from lifecycle.cli.inspect import inspect_command
from lifecycle.dispatch import CallbackError
from lifecycle.trainer import Trainer
from tests.support.processes import SCRIPTS, child_env
from tests.support.resume import LOADING, CountingPoints, Interrupt, assert_same_run, trainer


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Trainer:
    t = trainer(tmp_path_factory.mktemp("reference"))
    t.train()
    return t


def interrupted_then_resumed(output_dir: Path, step: int, **changes: Any) -> Trainer:
    first = trainer(output_dir, Interrupt(step), **changes)
    with pytest.raises(CallbackError, match="interrupted"):
        first.train()
    resumed = trainer(output_dir, **changes)
    resumed.train(resume_from_checkpoint=True)
    return resumed


# 23 examples, batches of 3: 8 batches, windows of 2 -> 4 steps per epoch, 12 in all.
@pytest.mark.parametrize("step", [1, 3, 4, 6, 11, 12], ids=lambda s: f"step{s}")
def test_resume_is_bit_exact(reference: Trainer, tmp_path: Path, step: int) -> None:
    """Mid-epoch (3, 6, 11), at the last step of an epoch (4), the first and the very last step."""
    resumed = interrupted_then_resumed(tmp_path, step)
    assert resumed.state.global_step == 12
    assert_same_run(reference, resumed)


# where the checkpoint is taken: step, arguments, batches of the open epoch trained before it, and
# examples loaded before it (3 epochs of 8 batches of 3 examples, 23 in all; 4 steps an epoch)
WHERE = {
    "mid-epoch": (3, {}, 6, 18),
    "mid-second-epoch": (6, {}, 4, 23 + 12),  # its order drawn after the first epoch's training
    "last-step-of-epoch": (4, {}, 8, 23),  # saved at the step boundary: the epoch is still open
    "epoch-closed": (8, {"save_strategy": "epoch", "eval_strategy": "epoch"}, 0, 46),
}


@pytest.mark.parametrize("loading", ["stateful", "shuffled"])
@pytest.mark.parametrize("where", list(WHERE))
def test_a_loader_of_ones_own_resumes_exactly(
    tmp_path: Path, where: str, loading: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A StatefulDataLoader restores its position; a plain shuffling one is replayed from the epoch's
    random state, its batches already trained on loaded again and dropped."""
    step, changes, batches, before = WHERE[where]
    ref = trainer(tmp_path / "ref", loading=loading, **changes)
    CountingPoints.loaded = 0
    ref.train()
    loaded_by_ref = CountingPoints.loaded  # fewer than 3 epochs' worth if early stopping ends it
    assert isinstance(ref, LOADING[loading])
    first = trainer(tmp_path / "run", Interrupt(step), loading=loading, **changes)
    with pytest.raises(CallbackError, match="interrupted"):
        first.train()
    checkpoint = tmp_path / "run" / f"checkpoint-{step}"
    assert (checkpoint / "dataloader.json").is_file() == (loading == "stateful")
    report = io.StringIO()
    assert inspect_command(str(checkpoint), out=report) == 0
    assert ("the loader's own state" if loading == "stateful" else "replayed:") in report.getvalue()
    CountingPoints.loaded = 0
    resumed = trainer(tmp_path / "run", loading=loading, **changes)
    with caplog.at_level(logging.WARNING):
        resumed.train(resume_from_checkpoint=checkpoint)
    assert_same_run(ref, resumed)

    replayed = min(batches * 3, 23) if loading == "shuffled" else 0  # loaded again and dropped
    assert CountingPoints.loaded == loaded_by_ref - before + replayed
    assert (f"dropping the {batches} batches already trained on" in caplog.text) == bool(replayed)


def test_early_stopping_counter_survives(reference: Trainer, tmp_path: Path) -> None:
    counters = []
    for folder in list_checkpoints(reference.args.output_dir):
        state = json.loads((folder / "trainer_state.json").read_text())
        counters.append(
            state["stateful_callbacks"]["EarlyStoppingCallback"][0]["early_stopping_patience_counter"]
        )
    assert any(0 < c < 4 for c in counters), counters  # the scenario does save a counter part-way
    resumed = interrupted_then_resumed(tmp_path, step=9)
    stopper = next(cb for cb in resumed.callbacks if isinstance(cb, EarlyStoppingCallback))
    expected = next(cb for cb in reference.callbacks if isinstance(cb, EarlyStoppingCallback))
    assert stopper.early_stopping_patience_counter == expected.early_stopping_patience_counter


def test_early_stop_resumed_from_the_stopping_checkpoint(tmp_path: Path) -> None:
    """Patience 1 stops the run early; a resume from its last checkpoint trains no further."""

    def stopper_run(out: Path, *extra: TrainerCallback) -> Trainer:
        t = trainer(out, *extra)
        stopper = next(cb for cb in t.callbacks if isinstance(cb, EarlyStoppingCallback))
        stopper.early_stopping_patience, stopper.early_stopping_threshold = 1, 10.0  # stops at step 4
        return t

    ref = stopper_run(tmp_path / "ref")
    ref.train()
    last = ref.state.global_step
    assert last == 4
    first = stopper_run(tmp_path / "run", Interrupt(last))
    with pytest.raises(CallbackError):
        first.train()
    resumed = stopper_run(tmp_path / "run")
    resumed.train(resume_from_checkpoint=True)
    assert resumed.state.global_step == last
    assert_same_run(ref, resumed)


def test_resuming_a_finished_run_runs_no_epoch(tmp_path: Path) -> None:
    """The last checkpoint of an epoch-strategy run was written after the final epoch had ended."""
    from tests.support.helpers import Recorder

    changes = {"save_strategy": "epoch", "eval_strategy": "epoch", "logging_strategy": "epoch"}
    finished = trainer(tmp_path, **changes).train()
    recorder = Recorder()
    resumed = trainer(tmp_path, recorder, **changes)
    again = resumed.train(resume_from_checkpoint=True)
    assert resumed.state.global_step == 12
    assert [e for e, _ in recorder.events] == ["init_end", "train_begin", "log", "train_end"]
    assert again.training_loss == finished.training_loss  # the whole run's, not a mean over no step


@pytest.mark.parametrize("longer", [{"num_train_epochs": 5}, {"max_steps": 18}], ids=["epochs", "max_steps"])
def test_a_finished_run_trains_longer_when_asked(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, longer: dict[str, Any]
) -> None:
    """Resumed with a larger num_train_epochs or max_steps, a run that had ended trains on to the new end
    as one run of that length would (a constant schedule, so the length does not change the rates)."""
    constant = {"lr_scheduler_type": "constant", "save_steps": 4, "patience": 100}
    whole = trainer(tmp_path / "whole", **constant, **longer)
    whole.train()
    trainer(tmp_path / "longer", **constant).train()
    longer_run = trainer(tmp_path / "longer", **constant, **longer)
    with caplog.at_level(logging.WARNING):
        longer_run.train(resume_from_checkpoint=True)
    assert "ended at step 12; training on to step" in caplog.text
    assert longer_run.state.global_step == whole.state.global_step > 12
    assert_same_run(whole, longer_run)


class EMA(TrainerCallback):
    """An exponential moving average of the weights: a callback state made of tensors."""

    def __init__(self) -> None:
        self.shadow: dict[str, torch.Tensor] | None = None

    def on_optimizer_step(self, args: Any, state: Any, control: Any, model: Any = None, **kw: Any) -> None:
        weights = {n: p.detach().clone() for n, p in model.named_parameters()}
        if self.shadow is None:
            self.shadow = weights
        else:
            for name, value in weights.items():
                self.shadow[name].mul_(0.9).add_(value, alpha=0.1)

    def state_dict(self) -> dict[str, Any]:
        return {"shadow": self.shadow, "version": 1}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.shadow = state["shadow"]


class Every(TrainerCallback):
    """Native handlers with counting filters; records where each fired."""

    def __init__(self) -> None:
        self.fired: list[tuple[str, int]] = []

    @on("step_end", every=3)
    def every_third_step(self, event: Any) -> None:
        self.fired.append(("step_end", event.state.global_step))

    @on("evaluate", every=2)
    def every_other_evaluation(self, event: Any) -> None:
        self.fired.append(("evaluate", event.state.global_step))

    @on("save", once=7)
    def seventh_save(self, event: Any) -> None:
        self.fired.append(("save", event.state.global_step))


@pytest.mark.parametrize("step", [5, 8], ids=lambda s: f"step{s}")
def test_counted_handlers_and_tensor_states_resume_where_they_stood(tmp_path: Path, step: int) -> None:
    """``@on(every=, once=)`` fire at the same steps across a resume; an EMA of tensors resumes exactly."""
    whole_ema, whole_every = EMA(), Every()
    trainer(tmp_path / "whole", whole_ema, whole_every).train()

    first_every = Every()
    first = trainer(tmp_path / "cut", EMA(), first_every, Interrupt(step))
    with pytest.raises(CallbackError, match="interrupted"):
        first.train()
    assert (tmp_path / "cut" / f"checkpoint-{step}" / "callbacks.safetensors").is_file()
    ema, every = EMA(), Every()
    trainer(tmp_path / "cut", ema, every).train(resume_from_checkpoint=True)

    assert first_every.fired + every.fired == whole_every.fired
    assert ("save", 7) in whole_every.fired
    assert ema.shadow is not None and whole_ema.shadow is not None
    for name, value in whole_ema.shadow.items():
        assert torch.equal(ema.shadow[name], value), f"EMA of {name} differs"


@pytest.mark.parametrize("eval_on_start", [False, True], ids=["", "eval-on-start"])
def test_resume_at_an_epoch_boundary(tmp_path: Path, eval_on_start: bool) -> None:
    """``save_strategy="epoch"``: the checkpoint is written after ``epoch_end``, the epoch closed; with
    ``eval_on_start`` the resumed run does not evaluate on its start again."""
    changes = {
        "save_strategy": "epoch",
        "eval_strategy": "epoch",
        "logging_strategy": "epoch",
        "eval_on_start": eval_on_start,
    }
    ref = trainer(tmp_path / "ref", **changes)
    ref.train()
    resumed = interrupted_then_resumed(tmp_path / "run", step=8, **changes)
    saved = json.loads((tmp_path / "run" / "checkpoint-8" / "trainer_state.json").read_text())
    assert saved["position"]["epoch_open"] is False and saved["position"]["epoch_index"] == 2
    assert_same_run(ref, resumed)


def test_loss_since_last_log_is_carried(tmp_path: Path, reference: Trainer) -> None:
    """Step 4 is between logs (3 and 6): the log at 6 averages steps 4-6 across the resume."""
    saved = json.loads((Path(reference.args.output_dir) / "checkpoint-4" / "resume.json").read_text())
    assert saved["loss"]["total"] > 0
    resumed = interrupted_then_resumed(tmp_path, step=4)
    at_six = [e for e in resumed.state.log_history if e["step"] == 6 and "loss" in e]
    assert at_six == [e for e in reference.state.log_history if e["step"] == 6 and "loss" in e]


def test_changed_intervals_take_effect_on_resume(tmp_path: Path) -> None:
    first = trainer(tmp_path, Interrupt(2))
    with pytest.raises(CallbackError):
        first.train()
    resumed = trainer(tmp_path, logging_steps=5, save_steps=4)
    resumed.train(resume_from_checkpoint=True)
    assert (resumed.state.logging_steps, resumed.state.save_steps) == (5, 4)
    logged = [e["step"] for e in resumed.state.log_history if "loss" in e]
    assert logged == [5, 10]  # the first process logged nothing before step 3
    steps = sorted(int(p.name.split("-")[1]) for p in list_checkpoints(tmp_path))
    assert steps == [1, 2, 4, 8, 12]


class Counter(TrainerCallback):
    """Counts the steps that are multiples of ``every``; its count is its state."""

    def __init__(self, every: int):
        self.every, self.seen = every, 0

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step % self.every == 0:
            self.seen += 1

    def state_dict(self) -> dict[str, int]:
        return {"seen": self.seen}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.seen = state["seen"]


def test_two_callbacks_of_one_class_keep_their_own_state(tmp_path: Path) -> None:
    first = trainer(tmp_path, Counter(1), Counter(2), Interrupt(5))
    with pytest.raises(CallbackError):
        first.train()
    a, b = Counter(1), Counter(2)
    resumed = trainer(tmp_path, a, b)
    resumed.train(resume_from_checkpoint=True)
    assert (a.seen, b.seen) == (12, 6)
    assert [type(cb).__name__ for cb in resumed.callbacks][-3:-1] == ["Counter", "Counter"]  # in place
    saved = json.loads((tmp_path / "checkpoint-12" / "trainer_state.json").read_text())
    assert saved["stateful_callbacks"]["Counter"] == [{"seen": 12}, {"seen": 6}]


def test_callback_states_are_not_restored_when_asked(tmp_path: Path) -> None:
    first = trainer(tmp_path, Counter(1), Interrupt(5))
    with pytest.raises(CallbackError):
        first.train()
    fresh = Counter(1)
    trainer(tmp_path, fresh, restore_callback_states_from_checkpoint=False).train(resume_from_checkpoint=True)
    assert fresh.seen == 12 - 5  # only the steps of the resumed process


def test_a_missing_or_extra_callback_state_is_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first = trainer(tmp_path, Counter(1), Interrupt(5))
    with pytest.raises(CallbackError):
        first.train()
    a, b = Counter(1), Counter(2)
    with caplog.at_level(logging.WARNING):
        trainer(tmp_path, a, b, max_steps=6).train(resume_from_checkpoint=True)
    assert "no state for callback Counter #2" in caplog.text
    assert (a.seen, b.seen) == (6, 1)  # the first resumed its count, the second started afresh


def test_a_different_training_order_is_reported(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    first = trainer(tmp_path, Interrupt(3))
    with pytest.raises(CallbackError):
        first.train()
    with caplog.at_level(logging.WARNING):
        trainer(tmp_path, train_size=24, max_steps=4).train(resume_from_checkpoint=True)
    assert "'size': 23" in caplog.text and "'size': 24" in caplog.text and "other batches" in caplog.text


# -- a real process, killed at random moments -------------------------------------------------
def _start(output_dir: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(SCRIPTS / "resume_run.py"), str(output_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=child_env(),
    )


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume(tmp_path: Path) -> None:
    from safetensors.torch import load_file

    chance = random.Random(int(os.environ.get("RESUME_KILL_SEED", "0")) or None)
    reference = _start(tmp_path / "reference")
    run = tmp_path / "run"
    kills, partial = 0, 0
    deadline = time.monotonic() + 60
    while kills < 3 and time.monotonic() < deadline:
        proc = _start(run)
        assert proc.stdout is not None
        # let it write one to three checkpoints, then kill it a moment later: in a step, or in the
        # middle of writing the next checkpoint (each takes tens of milliseconds with the ballast)
        said = [proc.stdout.readline() for _ in range(chance.randint(1, 3))]
        if not said[-1]:
            break  # finished first: nothing was left to do
        time.sleep(chance.uniform(0.0, 0.1))
        if proc.poll() is not None:
            break  # finished before the kill
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        kills += 1
        partial += any(p.name.startswith(".checkpoint-") for p in run.iterdir()) if run.exists() else 0
        if list_checkpoints(run):
            assert newest_valid_checkpoint(run, warn=print) is not None
    if not (run / "history.json").exists():
        last = _start(run)
        assert last.wait(timeout=60) == 0
    assert reference.wait(timeout=60) == 0
    print(f"{kills} kills, {partial} during a checkpoint write")
    assert kills >= 2
    assert json.loads((run / "history.json").read_text()) == json.loads(
        (tmp_path / "reference" / "history.json").read_text()
    )
    got, want = (
        load_file(str(run / "final.safetensors")),
        load_file(str(tmp_path / "reference" / "final.safetensors")),
    )
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want)
    final = json.loads((list_checkpoints(run)[-1] / "trainer_state.json").read_text())
    kept = {p.name for p in list_checkpoints(run)}
    assert Path(final["best_model_checkpoint"]).name in kept  # rotation spares the best
    assert len(kept) <= 3  # limit 2, plus the one this process resumed from
