"""ClearML offline: the session folder's ``task.json`` and ``metrics.jsonl`` read back; a resumed training
continues the same task at unshifted iterations."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.processes import SCRIPTS, child_env
from tests.support.resume import TIMING, Interrupt
from tests.support.trackers import expected_points, make_trainer, tag_of

pytest.importorskip("clearml")

# importing clearml alone takes seconds (jsonschema's format checkers build a grammar)
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("tracker_env")]


@pytest.fixture(autouse=True)
def _offline(tracker_env: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Offline, with no reporting subprocess (which takes ~11 s to close); afterwards, none of the
    variables ClearML sets for the processes a task starts (a later task would take itself for one)."""
    config = tracker_env / "clearml.conf"
    config.write_text("sdk.development.report_use_subprocess: false\n")
    monkeypatch.setenv("CLEARML_CONFIG_FILE", str(config))
    monkeypatch.setenv("CLEARML_OFFLINE_MODE", "1")
    monkeypatch.setenv("CLEARML_PROJECT", "lifecycle-check")
    before = set(os.environ)
    yield
    for key in set(os.environ) - before:
        del os.environ[key]


def sessions(home: Path) -> list[Path]:
    return sorted(p for p in (home / ".clearml" / "cache" / "offline").iterdir() if p.is_dir())


def scalars(session: Path) -> list[tuple[str, int, float]]:
    """``(title/series, iteration, value)`` of every scalar, in the order reported."""
    found = []
    for line in (session / "metrics.jsonl").read_text().splitlines():
        for event in json.loads(line):
            if event["type"] == "training_stats_scalar":
                found.append((f"{event['metric']}/{event['variant']}", event["iter"], event["value"]))
    return found


def reports(log_history: list[dict[str, Any]]) -> Counter[tuple[str, int]]:
    """How many times each ``(tag, step)`` is reported in a run with this log history."""
    return Counter((tag_of(key), entry["step"]) for entry in log_history for key in entry if key != "step")


def as_clearml_shows(value: Any) -> str:
    """A hyperparameter's value as ClearML stores it: text, lists as JSON, None as nothing."""
    if value is None:
        return ""
    return json.dumps(value) if isinstance(value, (list, dict)) else str(value)


def test_task_hyperparameters_and_scalars_read_back(tracker_env: Path, tmp_path: Path) -> None:
    trainer = make_trainer(tmp_path / "run", report_to="clearml", compute_metrics=lambda _: {"note": "fine"})
    trainer.train()

    (session,) = sessions(tracker_env)
    task = json.loads((session / "task.json").read_text())
    assert (task["project_name"], task["name"]) == ("lifecycle-check", "run")
    assert trainer.get_tracker("clearml").run_identity() == {"task_id": task["id"], "offline": True}
    args = task["hyperparams"]["Args"]
    for key, value in trainer.args.to_dict().items():
        assert args[key]["value"] == as_clearml_shows(value), key

    found = scalars(session)
    assert {(tag, step): value for tag, step, value in found} == pytest.approx(
        expected_points(trainer.state.log_history)
    )
    console = (session / "log.jsonl").read_text()
    assert "eval/note: fine" in console


def test_a_resumed_training_continues_the_task_at_the_same_iterations(
    tracker_env: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    first = make_trainer(
        out, report_to="clearml", save_strategy="steps", save_steps=4, callbacks=[Interrupt(4)]
    )
    with pytest.raises(RuntimeError, match="interrupted after saving step 4"):
        first.train()
    (session,) = sessions(tracker_env)
    assert {step for _, step, _ in scalars(session)} == {2, 4}

    resumed = make_trainer(out, report_to="clearml", save_strategy="steps", save_steps=4)
    resumed.train(resume_from_checkpoint=out / "checkpoint-4")
    assert sessions(tracker_env) == [session]  # the same task, continued
    found = scalars(session)
    assert Counter((tag, step) for tag, step, _ in found) == reports(resumed.state.log_history)  # none twice
    assert {(tag, step): value for tag, step, value in found} == pytest.approx(
        expected_points(resumed.state.log_history)
    )


def test_what_a_stopped_process_reported_past_its_checkpoint_is_not_reported_again(
    tracker_env: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    first = make_trainer(out, report_to="clearml", save_strategy="steps", save_steps=5)
    first.train()  # reported to step 10, past checkpoint-5 (the epoch's evaluation at 5 included)
    resumed = make_trainer(out, report_to="clearml", save_strategy="steps", save_steps=5)
    resumed.train(resume_from_checkpoint=out / "checkpoint-5")

    (session,) = sessions(tracker_env)
    found = scalars(session)
    assert Counter((tag, step) for tag, step, _ in found) == reports(resumed.state.log_history)
    # every point is the first process's: timings and the resumed part's train_loss differ
    assert {(tag, step): value for tag, step, value in found} == pytest.approx(
        expected_points(first.state.log_history)
    )


def test_after_a_kill_the_resumed_training_reports_each_point_once(tracker_env: Path, tmp_path: Path) -> None:
    def run(*kill_at: int) -> int:
        script = [sys.executable, str(SCRIPTS / "trackers_killed_run.py"), str(out), *map(str, kill_at)]
        return subprocess.run(script, env={**child_env(), "REPORT_TO": "clearml"}, timeout=300).returncode

    out = tmp_path / "killed"
    assert run(8) == -signal.SIGKILL  # after checkpoint-5, the evaluation at 5 and steps 6 and 8
    assert run() == 0  # resumes from checkpoint-5, into the same task
    clean = make_trainer(tmp_path / "clean", report_to="none", save_strategy="steps", save_steps=5)
    clean.train()

    (session,) = sessions(tracker_env)
    found = scalars(session)
    assert Counter((tag, step) for tag, step, _ in found) == reports(clean.state.log_history)
    timing = tuple(name.strip("_") for name in TIMING)  # eval/runtime, train/train_samples_per_second...
    untimed = {k: v for k, v in expected_points(clean.state.log_history).items() if not k[0].endswith(timing)}
    assert {(tag, step): value for tag, step, value in found if not tag.endswith(timing)} == pytest.approx(
        untimed
    )


def test_a_server_out_of_reach_keeps_the_task_offline(
    tracker_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("CLEARML_OFFLINE_MODE")
    monkeypatch.setenv("CLEARML_API_HOST", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("CLEARML_API_ACCESS_KEY", "key")
    monkeypatch.setenv("CLEARML_API_SECRET_KEY", "secret")
    trainer = make_trainer(tmp_path / "run", report_to="clearml")
    with caplog.at_level(logging.WARNING, logger="lifecycle.integrations"):
        trainer.train()
    assert "http://127.0.0.1:9 did not answer" in caplog.text
    (session,) = sessions(tracker_env)
    assert {(tag, step) for tag, step, _ in scalars(session)} == set(
        expected_points(trainer.state.log_history)
    )


def test_an_evaluation_after_training_reports_into_the_same_task(tracker_env: Path, tmp_path: Path) -> None:
    trainer = make_trainer(tmp_path / "run", report_to="clearml")
    trainer.train()
    metrics = trainer.evaluate(metric_key_prefix="test")
    (session,) = sessions(tracker_env)
    assert ("test/loss", 10, pytest.approx(metrics["test_loss"])) in scalars(session)
