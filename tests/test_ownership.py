"""One run per output_dir: run ids, the refusal of another run's folder, overwrite_output_dir, paths
relative to output_dir (a moved run), the lock (a live holder, a killed one), the best model verified."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from lifecycle import TrainerCallback, TrainingArguments
from lifecycle.checkpoint import list_checkpoints, rotate_checkpoints, verify_checkpoint
from lifecycle.checkpoint.contents import load_weights
from lifecycle.checkpoint.lock import LOCK_FILE, OutputDirError, OutputDirLock, OutputDirLocked
from lifecycle.checkpoint.ownership import run_id_of
from lifecycle.checkpoint.training import find_checkpoint
from lifecycle.trainer import Trainer
from tests.support.helpers import Classifier, Examples
from tests.support.processes import child_env


def trainer(output_dir: Path, *callbacks: TrainerCallback, **changes: Any) -> Trainer:
    settings: dict[str, Any] = {
        "output_dir": str(output_dir),
        "num_train_epochs": 2,
        "per_device_train_batch_size": 4,
        "save_steps": 2,
        "logging_steps": 2,
        "learning_rate": 0.1,
        "disable_tqdm": True,
        **changes,
    }
    return Trainer(
        Classifier(),
        TrainingArguments(**settings),
        train_dataset=Examples(16),
        eval_dataset=Examples(8, seed=1),
        callbacks=list(callbacks),
    )


def best_settings(**changes: Any) -> dict[str, Any]:
    """Evaluations every 2 steps; the highest eval loss counts as best, so the best is an early one."""
    return {
        "eval_strategy": "steps",
        "eval_steps": 2,
        "load_best_model_at_end": True,
        "greater_is_better": True,
        "learning_rate": 2.0,
        **changes,
    }


def run_ids(output_dir: Path) -> list[str | None]:
    return [run_id_of(p) for p in list_checkpoints(output_dir)]


class Steps(TrainerCallback):
    def __init__(self) -> None:
        self.steps = 0

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.steps += 1


# -- one run per output_dir ----------------------------------------------------------------------
def test_each_run_has_an_id_in_every_checkpoint_and_a_resume_keeps_it(tmp_path: Path) -> None:
    first = trainer(tmp_path)
    first.train()
    assert first.state.run_id and len(first.state.run_id) == 32
    assert set(run_ids(tmp_path)) == {first.state.run_id}
    resumed = trainer(tmp_path, num_train_epochs=3)
    resumed.train(resume_from_checkpoint=True)
    assert resumed.state.run_id == first.state.run_id
    assert set(run_ids(tmp_path)) == {first.state.run_id}


def test_a_new_run_into_another_runs_output_dir_is_refused_before_any_work(tmp_path: Path) -> None:
    trainer(tmp_path).train()
    before = {p.name: (p / "model.safetensors").read_bytes() for p in list_checkpoints(tmp_path)}
    steps = Steps()
    second = trainer(tmp_path, steps)
    weights = {k: v.clone() for k, v in second.model.state_dict().items()}
    with pytest.raises(OutputDirError) as refused:
        second.train()
    message = str(refused.value)
    assert str(tmp_path) in message and "checkpoint-8" in message
    assert "resume_from_checkpoint=True" in message and "overwrite_output_dir=True" in message
    assert steps.steps == 0 and second.dispatcher.node.name == "idle"
    assert all(torch.equal(weights[k], v) for k, v in second.model.state_dict().items())
    assert {p.name: (p / "model.safetensors").read_bytes() for p in list_checkpoints(tmp_path)} == before
    assert not (tmp_path / LOCK_FILE).exists()  # the refused call let go of the folder


def test_overwrite_replaces_the_old_checkpoints_at_the_first_save_not_before(tmp_path: Path) -> None:
    old = trainer(tmp_path)
    old.train()

    seen: list[set[str | None]] = []

    class Watch(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            seen.append(set(run_ids(tmp_path)))

    new = trainer(tmp_path, Watch(), overwrite_output_dir=True, num_train_epochs=1)
    new.train()
    assert seen[0] == {old.state.run_id}  # step 1: nothing saved yet, the old run is all there
    assert seen[2] == {new.state.run_id}  # step 3: after the first save, only the new run
    assert new.state.run_id != old.state.run_id
    assert [p.name for p in list_checkpoints(tmp_path)] == ["checkpoint-2", "checkpoint-4"]


def test_rotation_deletes_only_its_own_runs_checkpoints(tmp_path: Path) -> None:
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    trainer(ours).train()
    trainer(theirs).train()
    shutil.copytree(theirs / "checkpoint-2", ours / "checkpoint-1")
    own = run_id_of(ours / "checkpoint-8")
    removed = rotate_checkpoints(ours, 1, {ours / "checkpoint-8"}, lambda p: run_id_of(p) == own)
    assert [p.name for p in removed] == ["checkpoint-2", "checkpoint-4", "checkpoint-6"]
    assert [p.name for p in list_checkpoints(ours)] == ["checkpoint-1", "checkpoint-8"]


def test_resume_true_takes_the_run_that_saved_last(tmp_path: Path) -> None:
    """An overwriting run stopped between its first save and removing the old run's checkpoints."""
    old, new = tmp_path / "old", tmp_path / "new"
    trainer(old).train()
    trainer(new).train()
    shutil.rmtree(old / "checkpoint-2")
    shutil.copytree(new / "checkpoint-2", old / "checkpoint-2")
    os.utime(old / "checkpoint-2" / "manifest.json")  # written last
    found = find_checkpoint(old, True)
    assert found == old / "checkpoint-2" and run_id_of(found) == run_id_of(new / "checkpoint-2")


# -- paths relative to output_dir ------------------------------------------------------------------
def test_a_moved_run_resumes_rotates_and_loads_its_best(tmp_path: Path) -> None:
    first = trainer(tmp_path / "before", save_total_limit=1, **best_settings())
    first.train()
    best = first.state.best_model_checkpoint
    assert best is not None and not Path(best).is_absolute()
    shutil.move(tmp_path / "before", tmp_path / "after")
    moved = tmp_path / "after"
    resumed = trainer(moved, save_total_limit=1, **best_settings(num_train_epochs=3))
    resumed.train(resume_from_checkpoint=True)
    evals = [(e["eval_loss"], e["step"]) for e in resumed.state.log_history if "eval_loss" in e]
    best_now = f"checkpoint-{max(evals)[1]}"
    assert resumed.state.best_model_checkpoint == best_now
    assert best_now in [p.name for p in list_checkpoints(moved)]  # rotation kept the best
    best_model = Classifier()
    load_weights(moved / best_now, best_model, "cpu")
    got, want = resumed.model.state_dict(), best_model.state_dict()
    assert all(torch.equal(got[k], want[k]) for k in want)  # and loaded it at the end


def test_an_absolute_best_path_of_an_older_release_is_found_by_its_name(tmp_path: Path) -> None:
    run = tmp_path / "run"
    trainer(run, save_total_limit=1, **best_settings()).train()
    last = list_checkpoints(run)[-1]
    state = json.loads((last / "trainer_state.json").read_text())
    best = state["best_model_checkpoint"]
    state["best_model_checkpoint"] = f"/somewhere/else/{best}"
    reseal(last, state)
    resumed = trainer(run, save_total_limit=1, **best_settings(num_train_epochs=3))
    resumed.train(resume_from_checkpoint=True)
    assert not Path(resumed.state.best_model_checkpoint or "/").is_absolute()
    assert resumed.state.best_model_checkpoint in [p.name for p in list_checkpoints(run)]


def reseal(folder: Path, state: dict[str, Any]) -> None:
    """Write ``state`` as the checkpoint's state file, with its manifest entry to match."""
    data = (json.dumps(state, indent=2, sort_keys=True) + "\n").encode()
    (folder / "trainer_state.json").write_bytes(data)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"]["trainer_state.json"] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    verify_checkpoint(folder)


# -- the lock ------------------------------------------------------------------------------------------
HOLD = (
    "import sys, time; from lifecycle.checkpoint.lock import OutputDirLock; "
    "OutputDirLock(sys.argv[1]).acquire(); print('locked', flush=True); time.sleep(120)"
)


def hold_lock(output_dir: Path) -> subprocess.Popen[str]:
    output_dir.mkdir(parents=True, exist_ok=True)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(output_dir)], stdout=subprocess.PIPE, text=True, env=child_env()
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    return holder


def test_a_second_live_trainer_is_refused_naming_the_holder(tmp_path: Path) -> None:
    holder = hold_lock(tmp_path)
    try:
        steps = Steps()
        with pytest.raises(OutputDirLocked) as refused:
            trainer(tmp_path, steps).train()
        message = str(refused.value)
        assert f"pid {holder.pid} on host {socket.gethostname()}" in message and str(tmp_path) in message
        assert steps.steps == 0
    finally:
        holder.kill()
        holder.wait()


def test_the_lock_of_a_killed_trainer_is_taken_over(tmp_path: Path) -> None:
    holder = hold_lock(tmp_path)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    assert (tmp_path / LOCK_FILE).exists()  # left behind, naming the dead process
    assert json.loads((tmp_path / LOCK_FILE).read_text())["pid"] == holder.pid
    trainer(tmp_path).train()
    assert [p.name for p in list_checkpoints(tmp_path)][-1] == "checkpoint-8"
    assert not (tmp_path / LOCK_FILE).exists()


def test_the_lock_is_held_for_the_whole_run_and_released_when_it_raises(tmp_path: Path) -> None:
    class Fail(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            record = json.loads((tmp_path / LOCK_FILE).read_text())
            assert (record["pid"], record["host"]) == (os.getpid(), socket.gethostname())
            with pytest.raises(OutputDirLocked):  # a second trainer, even in this process
                OutputDirLock(tmp_path).acquire()
            raise RuntimeError("stop here")

    with pytest.raises(RuntimeError, match="stop here"):
        trainer(tmp_path, Fail()).train()
    with OutputDirLock(tmp_path):  # free again
        pass


# -- the best model, verified ----------------------------------------------------------------------
def test_a_damaged_best_checkpoint_is_reported_and_the_final_weights_kept(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    final: dict[str, torch.Tensor] = {}

    class Damage(TrainerCallback):
        """At the train summary, just before the best model is loaded: one byte of it flipped."""

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
            if "train_runtime" in logs:
                weights = Path(args.output_dir) / state.best_model_checkpoint / "model.safetensors"
                data = bytearray(weights.read_bytes())
                data[-1] ^= 0xFF
                weights.write_bytes(bytes(data))
                final.update({k: v.clone() for k, v in kwargs["model"].state_dict().items()})

    t = trainer(tmp_path, Damage(), **best_settings())
    with caplog.at_level(logging.WARNING):
        t.train()
    damaged = tmp_path / (t.state.best_model_checkpoint or "") / "model.safetensors"
    assert str(damaged) in caplog.text and "damaged" in caplog.text
    assert final and all(torch.equal(final[k], v) for k, v in t.model.state_dict().items())


# -- errors before work ----------------------------------------------------------------------------
def test_an_output_dir_that_cannot_be_created_is_an_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    out = tmp_path / "file" / "run"
    with pytest.raises(OutputDirError, match=f"output_dir {out} is not writable"):
        trainer(out, Steps()).train()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only folder")
def test_a_read_only_output_dir_is_an_error_naming_it(tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    out.chmod(0o500)
    try:
        with pytest.raises(OutputDirError, match=f"output_dir {out} is not writable"):
            trainer(out).train()
    finally:
        out.chmod(0o700)
