"""Trackio, local: the run's config and logs read back from its SQLite store; a resumed training
continues the run with each log once."""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from lifecycle import TrackerCallback, TrackioTracker
from tests.support.trackers import expected_points, make_trainer

# Trackio reads $TRACKIO_DIR once, when imported: a folder of this session's, and a project per test
if "trackio" not in sys.modules:
    os.environ["TRACKIO_DIR"] = tempfile.mkdtemp(prefix="lifecycle-trackio-")
    atexit.register(shutil.rmtree, os.environ["TRACKIO_DIR"], ignore_errors=True)
storage = pytest.importorskip("trackio.sqlite_storage")

pytestmark = pytest.mark.usefixtures("tracker_env")


@pytest.fixture(autouse=True)
def _local(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRACKIO_SPACE_ID", raising=False)


def tracker(tmp_path: Path) -> TrackioTracker:
    """A tracker in the test's own project."""
    return TrackioTracker("run", project=tmp_path.name)


def points(logs: list[dict[str, Any]]) -> list[tuple[str, int, Any]]:
    return [(k, log["step"], v) for log in logs for k, v in log.items() if k not in ("step", "timestamp")]


def test_config_and_logs_read_back_at_their_steps(tmp_path: Path) -> None:
    trainer = make_trainer(
        tmp_path / "run", report_to=[tracker(tmp_path)], compute_metrics=lambda _: {"note": "ok"}
    )
    trainer.train()
    (run,) = storage.SQLiteStorage.get_runs(tmp_path.name)
    assert run == "run"
    config = storage.SQLiteStorage.get_run_config(tmp_path.name, "run")
    for key, value in trainer.args.to_dict().items():
        assert config[key] == value, key
    logs = storage.SQLiteStorage.get_logs(tmp_path.name, "run")
    assert [log["step"] for log in logs] == [entry["step"] for entry in trainer.state.log_history]
    numbers = {(k, s): v for k, s, v in points(logs) if not isinstance(v, str)}
    assert numbers == pytest.approx(expected_points(trainer.state.log_history))
    assert [v for k, _, v in points(logs) if k == "eval/note"] == ["ok", "ok"]


def test_a_resumed_training_and_a_later_evaluation_continue_the_run(tmp_path: Path) -> None:
    out = tmp_path / "run"
    make_trainer(out, report_to=[tracker(tmp_path)], save_strategy="steps", save_steps=5).train()
    whole = storage.SQLiteStorage.get_logs(tmp_path.name, "run")
    resumed = make_trainer(out, report_to=[tracker(tmp_path)], save_strategy="steps", save_steps=5)
    resumed.train(resume_from_checkpoint=str(out / "checkpoint-5"))  # steps 5..10 logged a second time
    metrics = resumed.evaluate()
    (trackers,) = [cb for cb in resumed.callbacks if isinstance(cb, TrackerCallback)]
    trackers.finish(resumed.state)  # an evaluation leaves its trackers open; Trackio writes as it closes

    assert storage.SQLiteStorage.get_runs(tmp_path.name) == ["run"]
    logs = storage.SQLiteStorage.get_logs(tmp_path.name, "run")
    assert [log["step"] for log in logs] == [log["step"] for log in whole] + [10]
    timing = ("runtime", "per_second")
    assert [v for k, _, v in points(logs[:-1]) if not k.endswith(timing)] == pytest.approx(
        [v for k, _, v in points(whole) if not k.endswith(timing)]
    )
    assert logs[-1]["eval/loss"] == pytest.approx(metrics["eval_loss"])


def test_a_new_training_is_a_new_run(tmp_path: Path) -> None:
    make_trainer(tmp_path / "run", report_to=[tracker(tmp_path)]).train()
    make_trainer(tmp_path / "run", report_to=[tracker(tmp_path)]).train()
    records = storage.SQLiteStorage.get_run_records(tmp_path.name)
    assert len({record["id"] for record in records}) == 2
