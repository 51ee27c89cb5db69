"""Aim into a local repository, read back with Aim's own ``Repo``; a resumed training continues its run."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from lifecycle.integrations.values import run_config
from tests.support.processes import SCRIPTS, child_env
from tests.support.resume import TIMING
from tests.support.trackers import expected_points, make_trainer

aim = pytest.importorskip("aim")

# importing Aim and opening a run take seconds each
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("tracker_env")]


def read_run(repo_path: Path) -> Any:
    """The one run in ``repo_path``, indexed so that Aim's ``Repo`` sees what was written last."""
    from aim.sdk.index_manager import RepoIndexManager

    repo = aim.Repo(str(repo_path))
    (run_hash,) = repo.list_all_runs()
    RepoIndexManager.get_index_manager(repo).index(run_hash)
    return repo.get_run(run_hash)


def points(run: Any) -> dict[tuple[str, int], float]:
    found = {}
    for metric in run.metrics():
        steps, (values, *_) = metric.data.items_list()
        found.update({(metric.name, step): value for step, value in zip(steps, values, strict=True)})
    return found


def test_configuration_metrics_and_text_read_back(tmp_path: Path) -> None:
    out = tmp_path / "run"
    trainer = make_trainer(out, report_to="aim", compute_metrics=lambda _: {"note": "fine"})
    trainer.train()

    run = read_run(out)
    assert run.name == "run"
    assert run["hparams"] == run_config(trainer.args, trainer.model)
    assert points(run) == pytest.approx(expected_points(trainer.state.log_history))
    from aim.storage.context import Context

    notes = run.get_text_sequence("eval/note", context=Context({}))
    steps, (texts, *_) = notes.data.items_list()
    assert list(steps) == [5, 10] and {text.data for text in texts} == {"fine"}
    assert trainer.get_tracker("aim", unwrap=True) is None  # closed at train_end


def test_a_resumed_training_continues_the_same_run_each_step_once(tmp_path: Path) -> None:
    out = tmp_path / "run"
    first = make_trainer(out, report_to="aim", save_strategy="steps", save_steps=4)
    first.train()
    run_hash = first.get_tracker("aim").run_identity()["run_hash"]

    resumed = make_trainer(out, report_to="aim", save_strategy="steps", save_steps=4)
    resumed.train(resume_from_checkpoint=out / "checkpoint-4")
    assert resumed.get_tracker("aim").run_identity()["run_hash"] == run_hash

    run = read_run(out)  # one run in the repository: the first one, continued
    assert run.hash == run_hash
    for metric in run.metrics():
        steps = list(metric.data.items_list()[0])
        assert steps == sorted(set(steps)), metric.name
    assert points(run) == pytest.approx(expected_points(resumed.state.log_history))


def test_after_a_kill_the_resumed_training_continues_the_run(tmp_path: Path) -> None:
    out = tmp_path / "killed"

    def run(*kill_at: int) -> int:
        script = [sys.executable, str(SCRIPTS / "trackers_killed_run.py"), str(out), *map(str, kill_at)]
        return subprocess.run(script, env={**child_env(), "REPORT_TO": "aim"}, timeout=300).returncode

    assert run(8) == -signal.SIGKILL  # after checkpoint-5, the evaluation at 5 and steps 6 and 8
    killed = read_run(out)
    assert {s for m in killed.metrics() if m.name == "train/loss" for s in m.data.items_list()[0]} == {
        2,
        4,
        6,
        8,
    }
    assert run() == 0  # resumes from checkpoint-5: the run the killed process left locked is continued
    clean = make_trainer(tmp_path / "clean", report_to="none", save_strategy="steps", save_steps=5)
    clean.train()

    run_after = read_run(out)
    assert run_after.hash == killed.hash
    timing = tuple(name.strip("_") for name in TIMING)
    untimed = {k: v for k, v in expected_points(clean.state.log_history).items() if not k[0].endswith(timing)}
    assert {k: v for k, v in points(run_after).items() if not k[0].endswith(timing)} == pytest.approx(untimed)
