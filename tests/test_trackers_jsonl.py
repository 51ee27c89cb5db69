"""The local metrics log: on by default, off with ``"none"``, equal to ``state.log_history``, resumable."""

from __future__ import annotations

from pathlib import Path

import pytest

from lifecycle.integrations import METRICS_FILE, JSONLTracker, TrackerCallback, read_jsonl
from lifecycle.trace import TRACE_FILE
from tests.support.trackers import make_trainer

pytestmark = pytest.mark.usefixtures("tracker_env")


def test_default_writes_log_history_as_jsonl_and_nothing_else(tmp_path: Path) -> None:
    out = tmp_path / "run"
    trainer = make_trainer(out)
    trainer.train()
    history = trainer.state.log_history
    assert len(history) == 8  # 5 train logs, 2 evaluations, the summary
    assert read_jsonl(out / METRICS_FILE) == history
    # no TensorBoard, no Comet by default: the metrics log and the run's own trace
    assert sorted(p.name for p in out.iterdir()) == [METRICS_FILE, TRACE_FILE]
    assert isinstance(trainer.get_tracker("jsonl"), JSONLTracker)


def test_report_to_none_writes_no_tracker_output(tmp_path: Path) -> None:
    out = tmp_path / "run"
    trainer = make_trainer(out, report_to="none")
    trainer.train()
    assert not any(isinstance(cb, TrackerCallback) for cb in trainer.callbacks)
    assert [p.name for p in out.iterdir()] == [TRACE_FILE]


def test_evaluate_after_training_is_appended_at_the_last_step(tmp_path: Path) -> None:
    out = tmp_path / "run"
    trainer = make_trainer(out)
    trainer.train()
    metrics = trainer.evaluate()
    lines = read_jsonl(out / METRICS_FILE)
    assert lines[:-1] == trainer.state.log_history[:-1]
    assert lines[-1]["step"] == trainer.state.global_step == 10
    assert lines[-1]["eval_loss"] == metrics["eval_loss"]


def test_resume_continues_the_log_from_the_checkpoint(tmp_path: Path) -> None:
    out = tmp_path / "run"
    first = make_trainer(out, save_strategy="steps", save_steps=4)
    first.train()
    assert [e["step"] for e in read_jsonl(out / METRICS_FILE)] == [2, 4, 5, 6, 8, 10, 10, 10]

    resumed = make_trainer(out, save_strategy="steps", save_steps=4)
    resumed.train(resume_from_checkpoint=out / "checkpoint-4")
    lines = read_jsonl(out / METRICS_FILE)
    assert lines == resumed.state.log_history  # lines past step 4 from the first run are gone
    assert [e["step"] for e in lines] == [2, 4, 5, 6, 8, 10, 10, 10]
    assert lines[:2] == first.state.log_history[:2]

    fresh = make_trainer(out, overwrite_output_dir=True)  # a new run replacing it starts a new log
    fresh.train()
    assert read_jsonl(out / METRICS_FILE) == fresh.state.log_history
