"""DVCLive: params.yaml and each metric's plot read back; a resumed training continues the folder with
each row once, as the uninterrupted run has it."""

from __future__ import annotations

import csv
import logging
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.processes import SCRIPTS, child_env
from tests.support.trackers import expected_points, make_trainer

serialize = pytest.importorskip("dvclive.serialize")

pytestmark = pytest.mark.usefixtures("tracker_env")  # DVC_NO_ANALYTICS=1 among the quiet settings


def plot_rows(folder: Path) -> list[tuple[str, int, float]]:
    """Every row of every metric plot: (metric name, step, value), in file order per metric."""
    plots = folder / "plots" / "metrics"
    rows = []
    for plot in sorted(plots.rglob("*.tsv")):
        name = plot.relative_to(plots).with_suffix("").as_posix()
        with plot.open() as f:
            rows += [(name, int(r["step"]), float(r[plot.stem])) for r in csv.DictReader(f, delimiter="\t")]
    return rows


def test_params_and_metrics_read_back_at_their_steps(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    trainer = make_trainer(tmp_path / "run", report_to="dvclive", compute_metrics=lambda _: {"note": "fine"})
    with caplog.at_level(logging.WARNING, logger="lifecycle.integrations"):
        trainer.train()
    folder = tmp_path / "run" / "dvclive"
    params = serialize.load_yaml(folder / "params.yaml")  # YAML 1.2, as written: 5e-05 is a number
    for key, value in trainer.args.to_dict().items():
        assert params[key] == value, key
    rows = plot_rows(folder)
    numbers = [
        v for entry in trainer.state.log_history for k, v in entry.items() if k != "step" and k != "eval_note"
    ]
    assert len(rows) == len(numbers)  # a row per logged number
    assert {(name, step): value for name, step, value in rows} == pytest.approx(
        expected_points(trainer.state.log_history)
    )
    assert sum("'eval/note'" in r.getMessage() for r in caplog.records) == 1  # text: one warning


def test_a_resumed_training_keeps_each_row_once(tmp_path: Path) -> None:
    out = tmp_path / "run"
    first = make_trainer(out, report_to="dvclive", save_strategy="steps", save_steps=5)
    first.train()
    whole = plot_rows(out / "dvclive")
    resumed = make_trainer(out, report_to="dvclive", save_strategy="steps", save_steps=5)
    resumed.train(resume_from_checkpoint=str(out / "checkpoint-5"))  # steps 5..10 logged a second time
    rows = plot_rows(out / "dvclive")
    assert [(name, step) for name, step, _ in rows] == [(name, step) for name, step, _ in whole]
    timing = ("runtime", "per_second")
    assert [v for n, _, v in rows if not n.endswith(timing)] == pytest.approx(
        [v for n, _, v in whole if not n.endswith(timing)]
    )

    metrics = resumed.evaluate()  # after training: added to the same folder
    evaluations = [(step, v) for name, step, v in plot_rows(out / "dvclive") if name == "eval/loss"]
    assert evaluations[-1] == (10, pytest.approx(metrics["eval_loss"])) and len(evaluations) == 3


@pytest.mark.slow
def test_after_a_kill_the_resumed_training_leaves_each_row_once(tmp_path: Path) -> None:
    def run(folder: Path, *kill_at: int) -> int:
        script = [sys.executable, str(SCRIPTS / "trackers_killed_run.py"), str(folder), *map(str, kill_at)]
        done = subprocess.run(script, env=child_env(REPORT_TO="dvclive"), capture_output=True, timeout=120)
        return done.returncode

    clean, killed = tmp_path / "clean", tmp_path / "killed"
    assert run(clean) == 0
    assert run(killed, 8) == -signal.SIGKILL
    left = plot_rows(killed / "dvclive")
    assert [step for name, step, _ in left if name == "train/loss"] == [
        2,
        4,
        6,
        8,
    ]  # 6, 8: after checkpoint-5
    assert run(killed) == 0

    rows, expected = plot_rows(killed / "dvclive"), plot_rows(clean / "dvclive")
    assert [(name, step) for name, step, _ in rows] == [(name, step) for name, step, _ in expected]
    timing = ("runtime", "per_second")
    assert [v for n, _, v in rows if not n.endswith(timing)] == pytest.approx(
        [v for n, _, v in expected if not n.endswith(timing)]
    )
