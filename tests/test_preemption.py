"""Preemption with real signals sent to real training processes: SIGTERM (and a second configured
signal) saves a checkpoint at the next step boundary, finishes trackers and trace, and ends the
process with a clear message; resuming from that checkpoint ends as an uninterrupted run does.
Ctrl-C stops at a boundary too, saving only when asked."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from lifecycle import TrainingArguments
from lifecycle.args import ArgumentError
from lifecycle.checkpoint import list_checkpoints, verify_checkpoint
from lifecycle.integrations import read_jsonl
from lifecycle.preemption import SignalWatch
from tests.support.processes import SCRIPTS, child_env

pytestmark = pytest.mark.slow


def _start(out: Path, *flags: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(SCRIPTS / "preempt_run.py"), str(out), *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(),
    )


def _signal_at(process: subprocess.Popen[str], step: int, signum: int) -> tuple[int, str]:
    """Send ``signum`` once the process has finished ``step``; its exit status and standard error."""
    assert process.stdout is not None
    for line in process.stdout:
        if line.strip() == f"step {step}":
            process.send_signal(signum)
            break
    _, err = process.communicate(timeout=120)
    return process.returncode, err


def _finish(out: Path) -> tuple[dict[str, torch.Tensor], list[dict[str, object]]]:
    done = subprocess.run(
        [sys.executable, str(SCRIPTS / "preempt_run.py"), str(out)],
        env=child_env(),
        capture_output=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return load_file(str(out / "final.safetensors")), json.loads((out / "history.json").read_text())


@pytest.fixture(scope="module")
def whole(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[dict[str, torch.Tensor], list[dict[str, object]]]:
    return _finish(tmp_path_factory.mktemp("whole"))


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGUSR1"])
def test_a_preemption_signal_saves_finishes_and_resumes_exactly(
    tmp_path: Path, whole: tuple[dict[str, torch.Tensor], list[dict[str, object]]], signame: str
) -> None:
    out = tmp_path / "run"
    flags = () if signame == "SIGTERM" else ("--signals", signame)
    process = _start(out, *flags)
    code, err = _signal_at(process, 7, getattr(signal, signame))
    assert code != 0
    assert f"training stopped by {signame} at global_step" in err and "resume with train(" in err
    saved = list_checkpoints(out)
    assert len(saved) == 1  # save_steps=100: the only checkpoint is the one the signal asked for
    step = int(saved[0].name.removeprefix("checkpoint-"))
    assert 7 <= step < 40 and f"at global_step {step}" in err
    verify_checkpoint(saved[0])
    trace = json.loads((out / "trace.json").read_text())
    assert "TrainingPreempted" in trace["failure"]
    logged = read_jsonl(out / "metrics.jsonl")
    assert logged and max(int(e["step"]) for e in logged) <= step  # the log is whole, and true

    weights, history = _finish(out)
    assert history == whole[1]
    for name, value in whole[0].items():
        assert torch.equal(weights[name], value), name


@pytest.mark.parametrize("save", [False, True], ids=["no-save", "save-on-interrupt"])
def test_ctrl_c_stops_at_a_boundary_and_saves_when_asked(tmp_path: Path, save: bool) -> None:
    out = tmp_path / "run"
    process = _start(out, *(["--save-on-interrupt"] if save else []))
    code, err = _signal_at(process, 5, signal.SIGINT)
    assert code != 0 and "training interrupted (SIGINT) at global_step" in err
    assert bool(list_checkpoints(out)) == save
    assert "TrainingInterrupted" in json.loads((out / "trace.json").read_text())["failure"]


def test_signal_names_are_checked_when_the_arguments_are_built(tmp_path: Path) -> None:
    with pytest.raises(ArgumentError, match=r"preemption_signals: unknown signal 'SIGNOPE'"):
        TrainingArguments(output_dir=str(tmp_path), preemption_signals=["SIGNOPE"])
    assert SignalWatch(["TERM", "SIGUSR1"], False).preemption == (signal.SIGTERM, signal.SIGUSR1)
