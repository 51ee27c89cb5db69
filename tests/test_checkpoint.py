"""Checkpoints on disk: the state file's schema, atomic writes, verification, rotation, the best
checkpoint, safe loading and ``lifecycle inspect``."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from lifecycle import TrainerState, TrainingArguments
from lifecycle.checkpoint import (
    MANIFEST,
    CheckpointError,
    list_checkpoints,
    newest_valid_checkpoint,
    verify_checkpoint,
    write_checkpoint,
)
from lifecycle.checkpoint.contents import read_resume
from lifecycle.checkpoint.legacy import upgrade_checkpoint
from lifecycle.cli.inspect import inspect_command
from lifecycle.state import SCHEMA_VERSION, StateFileError
from lifecycle.trainer import Trainer
from tests.support.processes import child_env


class Pairs(torch.utils.data.Dataset[dict[str, torch.Tensor]]):
    def __init__(self, n: int, seed: int):
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 4, generator=g)
        self.y = (self.x[:, 0] > 0).long()

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"x": self.x[i], "labels": self.y[i]}


class Linear(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(4, 2)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        logits = self.linear(x)
        return {"logits": logits, "loss": torch.nn.functional.cross_entropy(logits, labels)}


def small_trainer(output_dir: Path, **changes: Any) -> Trainer:
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
    torch.manual_seed(0)
    return Trainer(
        Linear(), TrainingArguments(**settings), train_dataset=Pairs(16, 1), eval_dataset=Pairs(8, 2)
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished run with checkpoints at steps 2, 4, 6 and 8."""
    out = tmp_path_factory.mktemp("trained")
    small_trainer(out).train()
    return out


def copy_run(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def reseal(folder: Path) -> None:
    """Rewrite the manifest to match the folder's files, as an attacker with write access could."""
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest["files"] = {}
    for file in sorted(folder.iterdir()):
        if file.name != MANIFEST:
            data = file.read_bytes()
            manifest["files"][file.name] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    (folder / MANIFEST).write_text(json.dumps(manifest))


# -- the state file ---------------------------------------------------------------------------
def test_state_round_trips_through_json(tmp_path: Path) -> None:
    state = TrainerState(global_step=7, best_metric=0.25, log_history=[{"loss": 1.5, "step": 7}])
    state.position.batch_index = 3
    state.save_to_json(tmp_path / "s.json")
    data = json.loads((tmp_path / "s.json").read_text())
    assert data["schema_version"] == SCHEMA_VERSION
    assert TrainerState.load_from_json(tmp_path / "s.json") == state


def test_older_files_take_defaults(tmp_path: Path) -> None:
    """A file without schema_version or position (Hugging Face's trainer_state.json) loads."""
    (tmp_path / "hf.json").write_text(json.dumps({"global_step": 40, "epoch": 2.0, "log_history": []}))
    state = TrainerState.load_from_json(tmp_path / "hf.json")
    assert (state.global_step, state.epoch, state.position.batch_index) == (40, 2.0, 0)


def test_unknown_fields_of_a_newer_minor_are_kept_and_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = TrainerState(global_step=3).to_dict()
    data.update(schema_version="1.9", tokens_per_joule=12.5)
    data["position"]["microbatch_offset"] = 2
    (tmp_path / "new.json").write_text(json.dumps(data))
    with caplog.at_level(logging.WARNING):
        state = TrainerState.load_from_json(tmp_path / "new.json")
    assert "tokens_per_joule" in caplog.text and "microbatch_offset" in caplog.text
    assert "new.json" in caplog.text
    again = state.to_dict()
    assert again["tokens_per_joule"] == 12.5 and again["position"]["microbatch_offset"] == 2
    assert {k: v for k, v in again.items() if k != "schema_version"} == {
        k: v for k, v in data.items() if k != "schema_version"
    }


def test_a_newer_major_version_is_refused(tmp_path: Path) -> None:
    (tmp_path / "future.json").write_text(json.dumps({"schema_version": "2.0", "global_step": 1}))
    with pytest.raises(StateFileError, match=r"future\.json.*2\.0.*reads schema versions 1\.x"):
        TrainerState.load_from_json(tmp_path / "future.json")


@pytest.mark.parametrize(
    ("content", "pattern"),
    [
        ('{"global_step": "many"}', r"bad\.json: .*expected int @ \$\.global_step"),
        ('{"position": {"batch_index": [1]}}', r"bad\.json: .*@ \$\.position\.batch_index"),
        ('{"global_step": 3,', r"bad\.json: not valid JSON"),
        ("[1, 2]", r"bad\.json: expected a JSON object"),
    ],
)
def test_a_malformed_file_names_the_file_and_field(tmp_path: Path, content: str, pattern: str) -> None:
    (tmp_path / "bad.json").write_text(content)
    with pytest.raises(StateFileError, match=pattern):
        TrainerState.load_from_json(tmp_path / "bad.json")


# -- writing and verifying ---------------------------------------------------------------------
def fill(folder: Path) -> None:
    (folder / "model.safetensors").write_bytes(b"w" * 100)
    (folder / "trainer_state.json").write_text("{}")


def test_a_failed_write_leaves_nothing_behind(tmp_path: Path) -> None:
    write_checkpoint(tmp_path, 1, fill)

    def half(folder: Path) -> None:
        (folder / "model.safetensors").write_bytes(b"partial")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_checkpoint(tmp_path, 2, half)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-1"]
    verify_checkpoint(tmp_path / "checkpoint-1")


def test_a_crash_mid_write_keeps_the_previous_checkpoint_newest(tmp_path: Path) -> None:
    write_checkpoint(tmp_path, 1, fill)
    crashed = tmp_path / ".checkpoint-2.tmp-99999"  # what a killed process leaves
    crashed.mkdir()
    (crashed / "model.safetensors").write_bytes(b"w" * 10)
    assert newest_valid_checkpoint(tmp_path, warn=pytest.fail) == tmp_path / "checkpoint-1"
    write_checkpoint(tmp_path, 3, fill)
    assert not crashed.exists()
    assert [p.name for p in list_checkpoints(tmp_path)] == ["checkpoint-1", "checkpoint-3"]


def test_saving_a_step_again_replaces_it_whole(tmp_path: Path) -> None:
    write_checkpoint(tmp_path, 4, fill)
    displaced = tmp_path / ".checkpoint-4.old-99999"  # killed between the two renames
    (tmp_path / "checkpoint-4").rename(displaced)
    assert newest_valid_checkpoint(tmp_path, warn=pytest.fail) == tmp_path / "checkpoint-4"
    write_checkpoint(tmp_path, 4, lambda f: (fill(f), (f / "extra.txt").write_text("2")))
    assert (tmp_path / "checkpoint-4" / "extra.txt").read_text() == "2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-4"]


@pytest.mark.parametrize(
    ("damage", "pattern"),
    [
        (lambda f: (f / "model.safetensors").write_bytes(b"x" * 100), r"model\.safetensors: sha256"),
        (
            lambda f: (f / "model.safetensors").write_bytes(b"x"),
            r"safetensors: size 1, manifest says 100",
        ),
        (lambda f: (f / "trainer_state.json").unlink(), r"trainer_state\.json: missing"),
        (lambda f: (f / MANIFEST).unlink(), r"manifest\.json: missing"),
        (lambda f: (f / MANIFEST).write_text("{"), r"manifest\.json: unreadable"),
        (lambda f: (f / MANIFEST).write_text('{"files": {}}'), r"does not list trainer_state\.json"),
    ],
)
def test_verification_names_the_bad_file(tmp_path: Path, damage: Any, pattern: str) -> None:
    folder = write_checkpoint(tmp_path, 1, fill)
    damage(folder)
    with pytest.raises(CheckpointError, match=pattern):
        verify_checkpoint(folder)


# -- resuming from what is on disk -------------------------------------------------------------
def test_resume_true_skips_damaged_checkpoints(
    trained: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = copy_run(trained, tmp_path / "run")
    (out / "checkpoint-8" / "optimizer.safetensors").write_bytes(b"garbage")
    (out / "checkpoint-6" / MANIFEST).unlink()
    t = small_trainer(out)
    with caplog.at_level(logging.WARNING):
        t.train(resume_from_checkpoint=True)
    assert "checkpoint-8/optimizer.safetensors" in caplog.text and "checkpoint-6/manifest.json" in caplog.text
    assert t.run is not None and t.run.resume_from == out / "checkpoint-4"
    assert [e["step"] for e in t.state.log_history if "loss" in e] == [2, 4, 6, 8]


def test_an_explicit_damaged_checkpoint_is_refused(trained: Path, tmp_path: Path) -> None:
    out = copy_run(trained, tmp_path / "run")
    weights = out / "checkpoint-4" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1] + b"\0")
    with pytest.raises(CheckpointError, match=r"checkpoint-4/model\.safetensors: sha256"):
        small_trainer(out).train(resume_from_checkpoint=out / "checkpoint-4")


def test_a_checkpoint_of_another_model_is_refused(trained: Path, tmp_path: Path) -> None:
    t = small_trainer(copy_run(trained, tmp_path / "run"))
    t.model = torch.nn.Sequential(torch.nn.Linear(4, 3))
    with pytest.raises(CheckpointError, match=r"(?s)checkpoint-8/model\.safetensors: .*Unexpected.*linear"):
        t.train(resume_from_checkpoint=True)


def test_nothing_to_resume_from_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no valid checkpoint"):
        small_trainer(tmp_path).train(resume_from_checkpoint=True)


class Boom:
    """Unpickling this calls os.system: what a malicious checkpoint would carry."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


def test_a_malicious_pickle_is_refused_and_never_runs(trained: Path, tmp_path: Path) -> None:
    """A checkpoint laid out as an earlier release wrote it, its optimizer state a malicious pickle:
    resuming never reads it, and the explicit upgrade reads it with ``weights_only`` and refuses it."""
    out = copy_run(trained, tmp_path / "run")
    marker = tmp_path / "pwned"
    buffer = io.BytesIO()
    torch.save({"state": {}, "param_groups": [], "payload": Boom(marker)}, buffer)
    folder = out / "checkpoint-4"
    for part in ("optimizer.json", "optimizer.safetensors"):
        (folder / part).unlink()
    (folder / "optimizer.pt").write_bytes(buffer.getvalue())
    reseal(folder)
    verify_checkpoint(folder)  # the manifest matches: only the loader can stop it
    with pytest.raises(CheckpointError, match=r"checkpoint-4/optimizer\.pt: a pickle.*lifecycle upgrade"):
        small_trainer(out).train(resume_from_checkpoint=folder)
    with pytest.raises(CheckpointError, match=r"checkpoint-4/optimizer\.pt: cannot be read"):
        upgrade_checkpoint(folder)
    assert not marker.exists()
    pickle.loads(pickle.dumps(Boom(marker)))  # the payload is live: plain unpickling does run it
    assert marker.exists()


# -- rotation and the best checkpoint ----------------------------------------------------------
def best_args(**changes: Any) -> dict[str, Any]:
    return {"eval_strategy": "steps", "eval_steps": 2, "metric_for_best_model": "loss", **changes}


def test_save_strategy_best_saves_only_new_bests(tmp_path: Path) -> None:
    t = small_trainer(tmp_path, save_strategy="best", learning_rate=2.0, num_train_epochs=4, **best_args())
    t.train()
    evals = [(e["step"], e["eval_loss"]) for e in t.state.log_history if "eval_loss" in e]
    best_so_far, expected = float("inf"), []
    for step, loss in evals:
        if loss < best_so_far:
            best_so_far = loss
            expected.append(step)
    assert 0 < len(expected) < len(evals)  # the scenario has evaluations that are not bests
    assert [int(p.name.split("-")[1]) for p in list_checkpoints(tmp_path)] == expected
    best = json.loads((tmp_path / f"checkpoint-{expected[-1]}" / "trainer_state.json").read_text())
    assert best["best_model_checkpoint"] == f"checkpoint-{expected[-1]}"  # relative to output_dir
    assert t.state.best_metric == best_so_far


def test_rotation_keeps_the_best_and_loads_it_at_the_end(tmp_path: Path) -> None:
    """The highest eval loss counts as best here, so that the best is an early checkpoint."""
    t = small_trainer(
        tmp_path,
        save_total_limit=1,
        load_best_model_at_end=True,
        greater_is_better=True,
        learning_rate=2.0,
        num_train_epochs=4,
        **best_args(),
    )
    t.train()
    evals = [(e["eval_loss"], e["step"]) for e in t.state.log_history if "eval_loss" in e]
    best = tmp_path / f"checkpoint-{max(evals)[1]}"
    assert t.state.best_model_checkpoint == best.name
    kept = list_checkpoints(tmp_path)
    assert kept == [best, tmp_path / "checkpoint-16"]  # the limit is 1; the best is spared
    weights = load_file(str(best / "model.safetensors"))
    assert all(torch.equal(weights[k], v.cpu()) for k, v in t.model.state_dict().items())
    assert not torch.equal(
        weights["linear.weight"], load_file(str(kept[1] / "model.safetensors"))["linear.weight"]
    )


def test_rotation_spares_the_checkpoint_being_resumed_from(trained: Path, tmp_path: Path) -> None:
    out = copy_run(trained, tmp_path / "run")
    t = small_trainer(out, save_total_limit=1, num_train_epochs=3)
    t.train(resume_from_checkpoint=out / "checkpoint-2")
    assert [p.name for p in list_checkpoints(out)] == ["checkpoint-2", "checkpoint-12"]


# -- lifecycle inspect -------------------------------------------------------------------------
def test_a_rank_the_checkpoint_has_no_state_for_continues_from_rank_zeros(
    trained: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = trained / "checkpoint-4"
    with caplog.at_level(logging.WARNING):
        assert read_resume(folder, rank=1) == read_resume(folder)
    assert "no resume state for rank 1" in caplog.text and str(folder) in caplog.text


def test_inspect_reports_an_intact_checkpoint(trained: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert inspect_command(str(trained / "checkpoint-6")) == 0
    text = capsys.readouterr().out
    state = json.loads((trained / "checkpoint-6" / "trainer_state.json").read_text())
    assert f"step           {state['global_step']} of {state['max_steps']}" in text
    assert f"epoch index {state['position']['epoch_index']}" in text
    assert "ok  optimizer.json" in text and "ok  optimizer.safetensors" in text
    assert "integrity      ok" in text
    assert "data position  the epoch's order sliced (EpochSampler)" in text


def test_inspect_names_the_damaged_file(
    trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = copy_run(trained, tmp_path / "run")
    (out / "checkpoint-6" / "scheduler.json").write_bytes(b"")
    assert inspect_command(str(out / "checkpoint-6")) == 1
    text = capsys.readouterr().out
    assert "BAD scheduler.json" in text and "DAMAGED: scheduler.json" in text
    assert inspect_command(str(out)) == 2


def test_inspect_runs_without_torch(trained: Path) -> None:
    code = (
        "import sys; from lifecycle.cli import main; rc = main(['inspect', sys.argv[1]]); "
        "assert 'torch' not in sys.modules, 'torch was imported'; sys.exit(rc)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(trained / "checkpoint-4")],
        capture_output=True,
        text=True,
        env=child_env(),
    )
    assert done.returncode == 0, done.stderr
    assert "EarlyStopping" not in done.stdout and "step           4 of 8" in done.stdout


def test_inspect_reports_a_state_file_it_cannot_read(
    trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = copy_run(trained, tmp_path / "run")
    folder = out / "checkpoint-4"
    state = json.loads((folder / "trainer_state.json").read_text())
    (folder / "trainer_state.json").write_text(json.dumps({**state, "schema_version": "3.0"}))
    reseal(folder)
    assert inspect_command(str(folder)) == 1
    text = capsys.readouterr().out
    assert "schema_version 3.0 is newer than this release" in text and "DAMAGED: trainer_state.json" in text
