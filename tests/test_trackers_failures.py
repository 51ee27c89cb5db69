"""A tracker that raises, exits or hangs costs the run one warning and that tracker, nothing more."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lifecycle import TrainerCallback
from lifecycle.integrations import METRICS_FILE, GeneralTracker, JSONLTracker, TrackerCallback, read_jsonl
from lifecycle.integrations.limits import FINISH_TIMEOUT_ENV, TIMEOUT_ENV, TimeLimits
from tests.support.trackers import Recorder, close, expected_points, make_trainer

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")

pytestmark = pytest.mark.usefixtures("tracker_env")


class Exits(GeneralTracker):
    """A tracker whose library calls ``sys.exit`` when logging."""

    name = "exits"
    requires_logging_directory = False

    def __init__(self, run_name: str | None = None):
        self.logs = 0
        self.finished = 0

    def log(self, values: dict[str, Any], step: int | None = None, **kwargs: Any) -> None:
        self.logs += 1
        raise SystemExit(3)

    def finish(self) -> None:
        self.finished += 1


class RejectsConfig(GeneralTracker):
    """A tracker that cannot store the run's configuration."""

    name = "rejects_config"
    requires_logging_directory = False

    def __init__(self, run_name: str | None = None):
        self.logs = 0

    def store_init_configuration(self, values: dict[str, Any]) -> None:
        raise ValueError("no room for the configuration")

    def log(self, values: dict[str, Any], step: int | None = None, **kwargs: Any) -> None:
        self.logs += 1


class Hangs(GeneralTracker):
    """A tracker whose ``method`` never returns until ``release`` is set (a server that stopped answering)."""

    name = "hangs"
    requires_logging_directory = False

    def __init__(self, method: str = "log"):
        self.method = method
        self.release = threading.Event()
        self.entered = threading.Event()
        self.logs = 0

    def _block(self, method: str) -> None:
        if method == self.method:
            self.entered.set()
            self.release.wait()

    def log(self, values: dict[str, Any], step: int | None = None, **kwargs: Any) -> None:
        self.logs += 1
        self._block("log")

    def finish(self) -> None:
        self._block("finish")


class Interrupts(GeneralTracker):
    """A tracker whose ``log`` raises KeyboardInterrupt."""

    name = "interrupts"
    requires_logging_directory = False

    def __init__(self, run_name: str | None = None):
        self.run_name = run_name

    def log(self, values: dict[str, Any], step: int | None = None, **kwargs: Any) -> None:
        raise KeyboardInterrupt


@pytest.fixture
def hangs() -> Iterator[Hangs]:
    tracker = Hangs()
    yield tracker
    tracker.release.set()  # let its thread end


def scalars(folder: Path) -> dict[tuple[str, int], list[float]]:
    """TensorBoard's scalars, ``(tag, step) -> values``, read back from its event files."""
    acc = event_accumulator.EventAccumulator(str(folder))
    acc.Reload()
    found: dict[tuple[str, int], list[float]] = {}
    for tag in acc.Tags()["scalars"]:
        for event in acc.Scalars(tag):
            found.setdefault((tag, event.step), []).append(event.value)
    return found


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_trackers_that_exit_reject_their_config_or_hang_leave_the_others_whole(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch, hangs: Hangs
) -> None:
    monkeypatch.setenv(TIMEOUT_ENV, "0.5")
    out, board = tmp_path / "run", tmp_path / "tb"
    report_to = ["jsonl", "tensorboard", Exits, RejectsConfig, hangs]
    trainer = make_trainer(
        out, report_to=report_to, logging_dir=str(board), save_strategy="steps", save_steps=4
    )
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="lifecycle.integrations"):
        trainer.train()
    assert time.monotonic() - started < 20

    history = trainer.state.log_history
    assert read_jsonl(out / METRICS_FILE) == history
    points = scalars(board)
    expected = expected_points(history)
    assert points.keys() == expected.keys()
    assert all(any(close(v, value) for v in points[key]) for key, value in expected.items())

    warnings = warnings_of(caplog)
    assert len(warnings) == 3, warnings
    exits, rejects, hung = (
        next(w for w in warnings if repr(name) in w) for name in ("exits", "rejects_config", "hangs")
    )
    assert "in log: SystemExit: 3" in exits
    assert "in store_init_configuration: ValueError: no room for the configuration" in rejects
    assert "log() had not returned after 0.5 s" in hung and "detached" in hung

    exiting, rejecting = trainer.get_tracker("exits"), trainer.get_tracker("rejects_config")
    assert exiting.logs == 1 and exiting.finished == 1  # disabled at once, then finished
    assert rejecting.logs == 0  # disabled before its first log
    assert hangs.logs == 1 and hangs.entered.is_set()
    (callback,) = [cb for cb in trainer.callbacks if isinstance(cb, TrackerCallback)]
    assert callback.limits == TimeLimits(0.5, 120.0)
    assert sorted(callback.disabled) == ["exits", "hangs", "rejects_config"]


def test_a_hanging_finish_is_detached_after_the_finish_limit(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    stuck, recorder = Hangs("finish"), Recorder()
    callback = TrackerCallback([stuck, recorder, JSONLTracker(path=tmp_path / "m.jsonl")], finish_timeout=1)
    trainer = make_trainer(tmp_path / "run", report_to="none", callbacks=[callback])
    started = time.monotonic()
    try:
        with caplog.at_level(logging.WARNING, logger="lifecycle.integrations"):
            trainer.train()
    finally:
        stuck.release.set()
    assert 1 <= time.monotonic() - started < 15
    (warning,) = warnings_of(caplog)
    assert "'hangs' is detached" in warning and "finish()" in warning
    assert stuck.logs == len(trainer.state.log_history)  # every log arrived before the end
    assert recorder.points() == pytest.approx(expected_points(trainer.state.log_history))
    assert recorder.finished == 1
    assert read_jsonl(tmp_path / "m.jsonl") == trainer.state.log_history


def test_logs_arrive_in_order_and_none_is_lost_however_slow_the_tracker(tmp_path: Path) -> None:
    class Slow(Recorder):
        name = "slow"

        def log(self, values: dict[str, Any], step: int | None = None, **kwargs: Any) -> None:
            time.sleep(0.05)
            super().log(values, step)

    slow = Slow()
    callback = TrackerCallback([slow], queue_size=2)  # training waits when two logs are queued
    trainer = make_trainer(tmp_path / "run", report_to="none", callbacks=[callback], logging_steps=1)
    trainer.train()
    assert [step for step, _ in slow.rows] == [e["step"] for e in trainer.state.log_history]
    assert slow.points() == pytest.approx(expected_points(trainer.state.log_history))
    assert slow.finished == 1 and callback.disabled == {}


def test_training_never_waits_for_a_tracker_to_log(tmp_path: Path) -> None:
    class Gated(Recorder):
        """Its first log waits until training has taken its last step."""

        name = "gated"
        gate = threading.Event()

        def log(self, values: dict[str, Any], step: int | None = None, **kwargs: Any) -> None:
            assert self.gate.wait(30)
            super().log(values, step)

    class OpenGate(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if state.global_step == state.max_steps:
                logged.append(len(gated.rows))
                gated.gate.set()

    gated, logged = Gated(), []
    trainer = make_trainer(tmp_path / "run", report_to=[gated], callbacks=[OpenGate()])
    trainer.train()
    assert logged == [0]  # the last step came while the tracker still sat on the first log
    assert [step for step, _ in gated.rows] == [e["step"] for e in trainer.state.log_history]


def test_a_keyboard_interrupt_from_a_tracker_stops_training(tmp_path: Path) -> None:
    trainer = make_trainer(tmp_path / "run", report_to=["jsonl", Interrupts], logging_steps=1, max_steps=200)
    with pytest.raises(KeyboardInterrupt):
        trainer.train()
    assert trainer.state.global_step < 200
    assert read_jsonl(tmp_path / "run" / METRICS_FILE) == trainer.state.log_history  # finished all the same


def test_ctrl_c_while_the_end_waits_for_a_hanging_tracker_gets_through(tmp_path: Path, hangs: Hangs) -> None:
    callback = TrackerCallback([hangs], timeout=60, finish_timeout=60)
    trainer = make_trainer(tmp_path / "run", report_to="none", callbacks=[callback])
    assert hangs.entered.wait(0) is False
    ctrl_c = threading.Thread(target=lambda: hangs.entered.wait(30) and _ctrl_c_soon())
    ctrl_c.start()
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        trainer.train()
    ctrl_c.join()
    assert time.monotonic() - started < 20


def _ctrl_c_soon() -> None:
    time.sleep(1.0)  # training is over by then: the end is waiting on the hanging log
    os.kill(os.getpid(), signal.SIGINT)


@pytest.mark.parametrize(
    ("env", "given", "expected"),
    [
        ({}, {}, TimeLimits(30.0, 120.0)),
        ({TIMEOUT_ENV: "2", FINISH_TIMEOUT_ENV: "7.5"}, {}, TimeLimits(2.0, 7.5)),
        ({TIMEOUT_ENV: "2"}, {"call": 4.0, "finish": 9.0}, TimeLimits(4.0, 9.0)),
    ],
)
def test_time_limits_come_from_arguments_then_the_environment(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], given: dict[str, float], expected: TimeLimits
) -> None:
    for key in (TIMEOUT_ENV, FINISH_TIMEOUT_ENV):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert TimeLimits.resolve(**given) == expected


@pytest.mark.parametrize("text", ["soon", "0", "-1"])
def test_a_bad_time_limit_says_which_variable(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    monkeypatch.setenv(TIMEOUT_ENV, text)
    with pytest.raises(ValueError, match=TIMEOUT_ENV):
        TrackerCallback([])
