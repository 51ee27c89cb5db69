"""SwanLab offline: the run file read back with SwanLab's reader, the config from its folder; a resumed
training and an evaluation after it continue the run."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.support.swanlab_reader import run_contents
from tests.support.trackers import checkpoint_history, expected_points, make_trainer

pytest.importorskip("swanlab")

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("tracker_env")]  # SwanLab starts in ~5 s


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWANLAB_MODE", "offline")
    monkeypatch.setenv("SWANLAB_PROJECT", "lifecycle-check")  # as transformers documents it
    for name in ("SWANLAB_LOG_DIR", "SWANLAB_RUN_ID", "SWANLAB_RESUME", "SWANLAB_API_KEY"):
        monkeypatch.delenv(name, raising=False)


def run_files(out: Path) -> list[Path]:
    return sorted(out.glob("swanlog/run-*/run-*.swanlab"), key=lambda p: p.parent.name)


def test_config_and_scalars_read_back_at_their_steps(tmp_path: Path) -> None:
    trainer = make_trainer(tmp_path / "run", report_to="swanlab")
    trainer.train()
    (run_file,) = run_files(tmp_path / "run")
    _, name, scalars = run_contents(run_file)
    assert name == "run"
    assert scalars == pytest.approx(expected_points(trainer.state.log_history))
    config = yaml.safe_load((run_file.parent / "files" / "config.yaml").read_text())
    for key in ("learning_rate", "num_train_epochs", "output_dir", "run_name"):
        assert config[key]["value"] == trainer.args.to_dict()[key], key


def test_a_resumed_training_and_a_later_evaluation_continue_the_run(tmp_path: Path) -> None:
    out = tmp_path / "run"
    make_trainer(out, report_to="swanlab", save_strategy="steps", save_steps=5).train()
    trainer = make_trainer(out, report_to="swanlab", save_strategy="steps", save_steps=5)
    trainer.train(resume_from_checkpoint=str(out / "checkpoint-5"))
    metrics = trainer.evaluate()
    (trackers,) = [cb for cb in trainer.callbacks if type(cb).__name__ == "TrackerCallback"]
    trackers.finish(trainer.state)  # an evaluation leaves its trackers open

    first, resumed, evaluated = (run_contents(f) for f in run_files(out))
    assert first[0] == resumed[0] == evaluated[0]  # one run id, a folder per opening
    logged_again = trainer.state.log_history[len(checkpoint_history(out / "checkpoint-5")) : -1]
    assert resumed[2] == pytest.approx(expected_points(logged_again))
    assert evaluated[2][("eval/loss", 10)] == pytest.approx(metrics["eval_loss"])
