"""DagsHub through MLflow, into a local MLflow store read back with MlflowClient; no login, ever."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from lifecycle.args import ArgumentError
from tests.support.trackers import expected_points, make_trainer

pytest.importorskip("dagshub")
tracking = pytest.importorskip("mlflow.tracking")

pytestmark = pytest.mark.usefixtures("tracker_env")


@pytest.fixture
def store(tracker_env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    uri = f"file:{tmp_path / 'mlruns'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    return uri


def test_metrics_parameters_and_output_dir_read_back(
    store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_DAGSHUB_LOG_ARTIFACTS", "true")
    trainer = make_trainer(tmp_path / "run", report_to="dagshub", save_strategy="steps", save_steps=5)
    trainer.train()

    client = tracking.MlflowClient(store)
    (run,) = client.search_runs([client.get_experiment_by_name("Default").experiment_id])
    assert run.info.run_name == "run" and run.info.status == "FINISHED"
    assert run.data.params["learning_rate"] == str(trainer.args.learning_rate)
    expected = expected_points(trainer.state.log_history)
    found = {}
    for tag in {tag for tag, _ in expected}:
        found.update({(tag, m.step): m.value for m in client.get_metric_history(run.info.run_id, tag)})
    assert found == pytest.approx(expected)
    uploaded = {Path(a.path).name for a in client.list_artifacts(run.info.run_id, "artifacts")}
    assert uploaded >= {"checkpoint-5", "checkpoint-10"}


def test_without_a_tracking_uri_it_says_what_to_set_before_training(tmp_path: Path) -> None:
    with pytest.raises(ArgumentError, match="'dagshub' needs MLFLOW_TRACKING_URI"):
        make_trainer(tmp_path / "run", report_to="dagshub")


def test_a_server_out_of_reach_disables_it_quickly_and_training_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "https://127.0.0.1:9/owner/repo.mlflow")  # nothing listens
    began = time.monotonic()
    trainer = make_trainer(tmp_path / "run", report_to=["jsonl", "dagshub"])
    with caplog.at_level(logging.WARNING, logger="lifecycle.integrations"):
        trainer.train()
    assert time.monotonic() - began < 60  # MLflow itself would retry for minutes
    (callback,) = [cb for cb in trainer.callbacks if hasattr(cb, "disabled")]
    assert "did not answer" in callback.disabled["dagshub"]
    assert trainer.state.global_step == 10
