"""MLflow through MlflowClient into a local store, read back with MlflowClient."""

from __future__ import annotations

from pathlib import Path

import pytest

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
