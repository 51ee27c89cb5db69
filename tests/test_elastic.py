"""Runs that ``torchrun`` restarts after a worker dies: the restarted group forms (static and c10d
rendezvous alike) and resumes from the newest valid checkpoint by itself."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from lifecycle import Trainer, TrainingArguments
from tests.support.helpers import Classifier, Examples
from tests.support.processes import SCRIPTS, child_env, free_port


def launch(out: Path, *launcher: str, die: bool = False) -> tuple[list[dict[str, Any]], str]:
    """``torchrun *launcher`` with two workers of tests/scripts/elastic_run.py; what each wrote, and
    the launcher's output."""
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", "2",
               *launcher, str(SCRIPTS / "elastic_run.py"), str(out), *(["die"] if die else [])]  # fmt: skip
    try:
        done = subprocess.run(
            command, env=child_env(OMP_NUM_THREADS="1"), capture_output=True, text=True, timeout=120
        )
    except subprocess.TimeoutExpired:
        pytest.fail("the restarted workers hung")
    assert done.returncode == 0, done.stderr[-4000:]
    return [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)], done.stderr


def trainer(out: Path, **changes: Any) -> Trainer:
    settings = {"max_steps": 4, "save_steps": 2, "report_to": "none", "disable_tqdm": True, **changes}
    return Trainer(Classifier(), TrainingArguments(str(out), **settings), train_dataset=Examples(40))


def test_a_restarted_worker_resumes_from_the_newest_checkpoint_unless_told_not_to(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    trainer(tmp_path).train()
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "1")
    restarted = trainer(tmp_path, max_steps=6)
    with caplog.at_level(logging.WARNING):
        restarted.train()
    assert restarted.run is not None and restarted.run.resume_from == tmp_path / "checkpoint-4"
    assert "torchrun restarted the workers (attempt 1)" in caplog.text
    again = trainer(tmp_path, overwrite_output_dir=True)
    again.train(resume_from_checkpoint=False)
    assert again.run is not None and again.run.resume_from is None


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    ranks, _ = launch(tmp_path_factory.mktemp("uninterrupted"), "--standalone")
    return ranks[0]


@pytest.mark.slow
@pytest.mark.parametrize("rendezvous", ["static", "c10d"])
def test_a_killed_worker_is_restarted_and_the_run_resumes_by_itself(
    tmp_path: Path, rendezvous: str, uninterrupted: dict[str, Any]
) -> None:
    port = str(free_port())
    if rendezvous == "static":
        where = ["--rdzv-backend", "static", "--master-addr", "127.0.0.1", "--master-port", port]
    else:
        where = ["--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", "restarts"]
    ranks, stderr = launch(tmp_path, "--max-restarts", "1", *where, die=True)
    for rank in ranks:
        # the second attempt resumed from the checkpoint before the death, without being told to
        assert (rank["attempt"], rank["resumed_from"], rank["global_step"]) == (1, "checkpoint-4", 8)
        # and ended where the run that nothing interrupted ended
        assert rank["params"] == uninterrupted["params"]
        assert rank["log_history"] == uninterrupted["log_history"]
    assert "torchrun restarted the workers (attempt 1)" in stderr
