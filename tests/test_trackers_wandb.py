"""W&B offline: the run file is read back record by record."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.trackers import expected_points, make_trainer
from tests.support.wandb_reader import run_contents

wandb = pytest.importorskip("wandb")


pytestmark = pytest.mark.usefixtures("tracker_env")  # WANDB_MODE=offline among the quiet settings


def test_config_and_history_read_back(tmp_path: Path) -> None:
    trainer = make_trainer(tmp_path / "run", report_to="wandb", compute_metrics=lambda _: {"note": "fine"})
    trainer.train()
    assert trainer.get_tracker("wandb").tracker is None  # finished at train_end
    wandb.teardown()  # the run file is complete once the service is down

    (run_file,) = (tmp_path / "run" / "wandb").glob("offline-run-*/run-*.wandb")
    name, config, history = run_contents(run_file)
    assert name == "run"
    for key, value in trainer.args.to_dict().items():
        assert config[key] == value, key
    numbers = {k: v for k, v in history.items() if not isinstance(v, str)}
    assert numbers == pytest.approx(expected_points(trainer.state.log_history))
    assert history[("eval/note", 5)] == history[("eval/note", 10)] == "fine"
