"""W&B offline: the run file is read back record by record."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.trackers import checkpoint_history, expected_points, make_trainer
from tests.support.wandb_reader import run_contents, run_id

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


def test_a_resumed_training_and_a_later_evaluation_continue_the_run(tmp_path: Path) -> None:
    out = tmp_path / "run"
    make_trainer(out, report_to="wandb", save_strategy="steps", save_steps=5).train()
    trainer = make_trainer(out, report_to="wandb", save_strategy="steps", save_steps=5)
    trainer.train(resume_from_checkpoint=str(out / "checkpoint-5"))
    metrics = trainer.evaluate()
    wandb.finish()  # an evaluation on its own leaves its run open, as transformers' callback does
    wandb.teardown()

    # offline, each process (and each reopening) writes a folder of its own, all with the one run id
    first, resumed, evaluated = sorted(
        out.glob("wandb/offline-run-*/run-*.wandb"), key=lambda p: p.parent.name
    )
    assert len({run_id(first), run_id(resumed), run_id(evaluated)}) == 1
    assert first.parent.name.endswith(run_id(first))

    logged_again = trainer.state.log_history[len(checkpoint_history(out / "checkpoint-5")) : -1]
    assert min(entry["step"] for entry in logged_again) == 5  # the epoch's evaluation, after the checkpoint
    numbers = {k: v for k, v in run_contents(resumed)[2].items() if not isinstance(v, str)}
    assert numbers == pytest.approx(expected_points(logged_again))
    _, _, history = run_contents(evaluated)
    assert history[("eval/loss", 10)] == pytest.approx(metrics["eval_loss"])
