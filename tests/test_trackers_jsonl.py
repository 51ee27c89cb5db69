"""The local metrics log: on by default, off with ``"none"``, equal to ``state.log_history``, resumable."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from lifecycle.integrations import METRICS_FILE, JSONLTracker, TrackerCallback, read_jsonl
from lifecycle.trace import TRACE_FILE
from tests.support.processes import SCRIPTS, child_env
from tests.support.resume import comparable
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


def test_a_resume_drops_the_lines_logged_after_the_checkpoint_at_its_own_step(tmp_path: Path) -> None:
    out = tmp_path / "run"
    first = make_trainer(out, save_strategy="steps", save_steps=5)
    first.train()
    # checkpoint-5 is written after the logs of step 4, before the evaluation of the first epoch (step 5)
    steps = [e["step"] for e in read_jsonl(out / METRICS_FILE)]
    assert steps == [2, 4, 5, 6, 8, 10, 10, 10] and "eval_loss" in read_jsonl(out / METRICS_FILE)[2]

    resumed = make_trainer(out, save_strategy="steps", save_steps=5)
    resumed.train(resume_from_checkpoint=out / "checkpoint-5")
    lines = read_jsonl(out / METRICS_FILE)
    assert lines == resumed.state.log_history
    assert [e["step"] for e in lines] == steps  # the evaluation at step 5 once, not twice
    assert comparable(lines) == comparable(first.state.log_history)


def test_a_line_cut_short_by_a_killed_writer_is_dropped(tmp_path: Path) -> None:
    out = tmp_path / "run"
    first = make_trainer(out, save_strategy="steps", save_steps=5)
    first.train()
    log = out / METRICS_FILE
    whole = log.read_text(encoding="utf-8")
    with open(log, "a", encoding="utf-8") as lines:
        lines.write('{"loss": 0.61, "grad_norm": 1.2, "learn')  # the process died mid-write
    assert read_jsonl(log) == first.state.log_history  # readable as it is

    resumed = make_trainer(out, save_strategy="steps", save_steps=5)
    resumed.train(resume_from_checkpoint=out / "checkpoint-5")
    assert read_jsonl(log) == resumed.state.log_history
    assert log.read_text(encoding="utf-8").endswith("}\n")

    with open(log, "a", encoding="utf-8") as lines:
        lines.write('{"eval_loss": 0.8')
    metrics = resumed.evaluate()  # appends to the log: after the cut, never onto the broken line
    text = log.read_text(encoding="utf-8")
    assert text.startswith(whole[: whole.index('{"eval_loss"')])
    assert read_jsonl(log)[-1]["eval_loss"] == metrics["eval_loss"]
    assert len(read_jsonl(log)) == len(text.splitlines()) == len(resumed.state.log_history)


@pytest.mark.slow
def test_after_a_kill_and_a_resume_the_log_holds_each_line_once(tmp_path: Path) -> None:
    def run(folder: Path, *kill_at: int) -> int:
        script = [sys.executable, str(SCRIPTS / "trackers_killed_run.py"), str(folder), *map(str, kill_at)]
        done = subprocess.run(script, env=child_env(), capture_output=True, timeout=120)
        return done.returncode

    clean, killed = tmp_path / "clean", tmp_path / "killed"
    assert run(clean) == 0
    assert run(killed, 8) == -signal.SIGKILL
    left = read_jsonl(killed / METRICS_FILE)
    # the killed run logged past its last checkpoint (5): the evaluation at 5, then steps 6 and 8
    assert [e["step"] for e in left] == [2, 4, 5, 6, 8]
    assert run(killed) == 0  # resumes from checkpoint-5

    expected = read_jsonl(clean / METRICS_FILE)
    lines = read_jsonl(killed / METRICS_FILE)
    assert [e["step"] for e in lines] == [e["step"] for e in expected] == [2, 4, 5, 6, 8, 10, 10, 10]
    assert comparable(lines) == comparable(expected)
