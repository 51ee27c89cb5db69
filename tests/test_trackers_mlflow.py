"""MLflow through MlflowClient into a local store, read back with MlflowClient; a resumed training
continues its run."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.processes import SCRIPTS, child_env
from tests.support.trackers import expected_points, make_trainer

tracking = pytest.importorskip("mlflow.tracking")

pytestmark = pytest.mark.usefixtures("tracker_env")


@pytest.fixture(autouse=True)
def _file_store(tracker_env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A file store in the test's folder, set after ``tracker_env`` cleared the user's tracking URI."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"file:{tmp_path / 'mlruns'}")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")


def test_parameters_metrics_and_text_read_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "lifecycle-check")
    trainer = make_trainer(tmp_path / "run", report_to="mlflow", compute_metrics=lambda _: {"note": "fine"})
    trainer.train()

    client = tracking.MlflowClient(f"file:{tmp_path / 'mlruns'}")
    experiment = client.get_experiment_by_name("lifecycle-check")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.run_name == "run" and run.info.status == "FINISHED"
    for key, value in trainer.args.to_dict().items():
        assert run.data.params[key] == str(value), key

    expected = expected_points(trainer.state.log_history)
    found: dict[tuple[str, int], float] = {}
    for tag in {tag for tag, _ in expected}:
        found.update({(tag, m.step): m.value for m in client.get_metric_history(run.info.run_id, tag)})
    assert found == pytest.approx(expected)

    note = client.download_artifacts(run.info.run_id, "text/eval/note/step_5.txt", str(tmp_path))
    assert Path(note).read_text() == "fine"
    assert trainer.get_tracker("mlflow").tracker is None  # the run was ended at train_end


def history(client: Any, run_id: str) -> list[tuple[str, int, float]]:
    """Every point of the run, (metric, step, value), in order."""
    keys = client.get_run(run_id).data.metrics
    return sorted((key, m.step, m.value) for key in keys for m in client.get_metric_history(run_id, key))


def test_an_evaluation_after_training_goes_into_the_same_run(tmp_path: Path) -> None:
    trainer = make_trainer(tmp_path / "run", report_to="mlflow")
    trainer.train()
    metrics = trainer.evaluate()

    client = tracking.MlflowClient(f"file:{tmp_path / 'mlruns'}")
    (run,) = client.search_runs(["0"])
    assert run.info.status == "FINISHED"
    evaluations = [
        (step, value) for key, step, value in history(client, run.info.run_id) if key == "eval/loss"
    ]
    assert [step for step, _ in evaluations] == [5, 10, 10]
    assert metrics["eval_loss"] in [value for _, value in evaluations[1:]]


@pytest.mark.slow
def test_after_a_kill_the_resumed_training_continues_the_run_with_each_step_once(tmp_path: Path) -> None:
    def run(folder: Path, *kill_at: int) -> int:
        script = [sys.executable, str(SCRIPTS / "trackers_killed_run.py"), str(folder), *map(str, kill_at)]
        env = child_env(REPORT_TO="mlflow", MLFLOW_EXPERIMENT_NAME=folder.name)
        done = subprocess.run(script, env=env, capture_output=True, timeout=120)
        return done.returncode

    client = tracking.MlflowClient(f"file:{tmp_path / 'mlruns'}")

    def the_run(name: str) -> Any:
        (found,) = client.search_runs([client.get_experiment_by_name(name).experiment_id])
        return found

    assert run(tmp_path / "clean") == 0
    assert run(tmp_path / "killed", 8) == -signal.SIGKILL
    killed = the_run("killed")
    assert killed.info.status == "RUNNING"
    # logged after checkpoint-5 by the killed process: the epoch's evaluation at 5, then steps 6 and 8
    assert [step for key, step, _ in history(client, killed.info.run_id) if key == "train/loss"] == [
        2,
        4,
        6,
        8,
    ]
    assert run(tmp_path / "killed") == 0  # resumes from checkpoint-5, into the same run

    resumed = the_run("killed")
    assert resumed.info.run_id == killed.info.run_id and resumed.info.status == "FINISHED"
    points, clean = history(client, resumed.info.run_id), history(client, the_run("clean").info.run_id)
    # each point as often as in the uninterrupted run (train/epoch is logged 3 times at step 10 there)
    assert [(key, step) for key, step, _ in points] == [(key, step) for key, step, _ in clean]
    timing = ("runtime", "per_second")
    expected = [value for key, _, value in clean if not key.endswith(timing)]
    assert [value for key, _, value in points if not key.endswith(timing)] == pytest.approx(expected)
