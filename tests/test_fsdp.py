"""FSDP2 for real: ``torchrun`` ranks on the CPU (gloo) training a sharded model, checkpoints killed and
resumed, shards damaged, a run resumed on another number of ranks."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_model

from lifecycle.checkpoint import SHARDS_DIR, WEIGHTS_FILE, list_checkpoints, verify_checkpoint
from lifecycle.checkpoint.training import find_checkpoint
from tests.support.processes import SCRIPTS, child_env

pytestmark = pytest.mark.slow

SHARDED = {"state_dict_type": "SHARDED_STATE_DICT"}


def torchrun(out: Path, settings: dict[str, Any], ranks: int = 2, dies: bool = False) -> list[dict[str, Any]]:
    """``tests/scripts/fsdp_run.py out settings`` on ``ranks`` processes; what each rank wrote (nothing
    when the run ``dies``). The ranks' stderr is kept in ``out/stderr.txt``."""
    out.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(ranks),
               str(SCRIPTS / "fsdp_run.py"), str(out), json.dumps(settings)]  # fmt: skip
    try:
        done = subprocess.run(
            command, env=child_env(OMP_NUM_THREADS="1"), capture_output=True, text=True, timeout=240
        )
    except subprocess.TimeoutExpired:
        pytest.fail("the ranks hung")
    (out / "stderr.txt").write_text(done.stderr)
    if dies:
        assert done.returncode != 0, "the run was to die after a save"
        return []
    assert done.returncode == 0, done.stderr[-4000:]
    return [json.loads((out / f"rank{r}.json").read_text()) for r in range(ranks)]


@pytest.fixture(scope="module")
def sharded_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    """Six steps of FSDP2 on two ranks, a sharded checkpoint every two, the model saved at the end."""
    out = tmp_path_factory.mktemp("sharded")
    return out, torchrun(out, {"fsdp_config": SHARDED, "save_model": True})


def losses(result: dict[str, Any], key: str = "loss") -> list[float]:
    return [entry[key] for entry in result["log_history"] if key in entry]


def test_fsdp_trains_as_ddp_does(sharded_run: tuple[Path, list[dict[str, Any]]], tmp_path: Path) -> None:
    _, (zero, one) = sharded_run
    ddp, _ = torchrun(tmp_path, {"fsdp_config": None, "save_steps": 100})
    assert zero["sharded"] and not ddp["sharded"]
    assert losses(zero) == losses(one)  # the logged loss is the mean over the ranks
    # the same model, data and random draws: only the order of float sums differs
    assert losses(zero) == pytest.approx(losses(ddp), rel=1e-5)
    # clipped over the shards as over the whole gradient: the norms are the whole model's
    assert losses(zero, "grad_norm") == pytest.approx(losses(ddp, "grad_norm"), rel=1e-5)
    assert sum(norm > 0.2 for norm in losses(zero, "grad_norm")) >= 3
    # evaluation shared out among the ranks (one runs an extra batch for the other's collectives)
    assert len(losses(zero, "eval_loss")) == 2
    assert losses(zero, "eval_loss") == pytest.approx(losses(ddp, "eval_loss"), rel=1e-5)
    for name, weights in ddp["params"].items():
        assert torch.allclose(torch.tensor(zero["params"][name]), torch.tensor(weights), atol=1e-6), name
    assert zero["params"] != zero["began"]  # and it learned


def test_a_sharded_checkpoint_lists_every_shard(sharded_run: tuple[Path, list[dict[str, Any]]]) -> None:
    out, _ = sharded_run
    checkpoint = out / "run" / "checkpoint-4"
    listed = verify_checkpoint(checkpoint)["files"]
    shards = sorted(p.name for p in (checkpoint / SHARDS_DIR).iterdir())
    assert len(shards) == 2  # one per rank
    assert {f"{SHARDS_DIR}/{name}" for name in shards} <= set(listed)
    assert WEIGHTS_FILE not in listed and "resume-rank1.json" in listed


def test_a_damaged_shard_makes_its_checkpoint_skipped(
    sharded_run: tuple[Path, list[dict[str, Any]]], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out, _ = sharded_run
    run = shutil.copytree(out / "run", tmp_path / "run")
    shard = sorted((run / "checkpoint-6" / SHARDS_DIR).iterdir())[1]
    data = bytearray(shard.read_bytes())
    data[-3] ^= 0xFF  # a flipped bit in a tensor of rank 1's shard; the size stays
    shard.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING):
        assert find_checkpoint(run, True) == run / "checkpoint-4"
    assert f"checkpoint-6/{SHARDS_DIR}/{shard.name}: sha256 does not match" in caplog.text


def test_save_model_writes_full_weights_a_plain_model_loads(
    sharded_run: tuple[Path, list[dict[str, Any]]],
) -> None:
    sys.path.insert(0, str(SCRIPTS))
    try:
        from fsdp_run import Net  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(SCRIPTS))
    out, (zero, _) = sharded_run
    model = Net()
    missing, unexpected = load_model(model, out / "final" / WEIGHTS_FILE)
    assert not missing and not unexpected
    assert {k: v.tolist() for k, v in model.state_dict().items()} == zero["params"]


def test_a_killed_async_run_shows_only_sealed_checkpoints_and_resumes_exactly(
    sharded_run: tuple[Path, list[dict[str, Any]]], tmp_path: Path
) -> None:
    _, (full, _) = sharded_run
    settings = {"fsdp_config": {**SHARDED, "async_save": True}}
    torchrun(tmp_path, {**settings, "die_at": 4}, dies=True)
    # checkpoint-4's shards were under way when the ranks died: it was never sealed, so never shown
    assert [p.name for p in list_checkpoints(tmp_path / "run")] == ["checkpoint-2"]
    assert [p.name.split(".tmp-")[0] for p in (tmp_path / "run").glob(".*.tmp-*")] == [".checkpoint-4"]
    verify_checkpoint(tmp_path / "run" / "checkpoint-2")
    zero, one = torchrun(tmp_path, {**settings, "resume": True})
    assert zero["began"] == full["saved"]["2"]  # the background-written shards hold the very weights
    assert zero["params"] == one["params"] == full["params"]  # bit for bit
    assert zero["log_history"] == full["log_history"]


def test_a_killed_full_state_dict_run_resumes_exactly(
    sharded_run: tuple[Path, list[dict[str, Any]]], tmp_path: Path
) -> None:
    _, (full, _) = sharded_run
    settings = {"fsdp_config": {"state_dict_type": "FULL_STATE_DICT"}}
    torchrun(tmp_path, {**settings, "die_at": 4}, dies=True)
    checkpoint = tmp_path / "run" / "checkpoint-4"
    assert (checkpoint / WEIGHTS_FILE).is_file() and not (checkpoint / SHARDS_DIR).exists()
    zero, _ = torchrun(tmp_path, {**settings, "resume": True})
    assert zero["began"] == full["saved"]["4"]
    assert zero["params"] == full["params"] and zero["log_history"] == full["log_history"]


def test_two_ranks_checkpoint_resumes_on_one(
    sharded_run: tuple[Path, list[dict[str, Any]]], tmp_path: Path
) -> None:
    out, (full, _) = sharded_run
    (only,) = torchrun(
        tmp_path, {"fsdp_config": SHARDED, "resume": str(out / "run" / "checkpoint-4")}, ranks=1
    )
    assert only["began"] == full["saved"]["4"]  # resharded from two ranks' shards into one
    assert [e["step"] for e in only["log_history"] if "loss" in e][-2:] == [5, 6]
    assert "world size 2 → 1" in (tmp_path / "stderr.txt").read_text()


def test_a_transformers_model_saved_under_fsdp_loads_with_from_pretrained(tmp_path: Path) -> None:
    transformers = pytest.importorskip("transformers")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               str(SCRIPTS / "fsdp_transformers_run.py"), str(tmp_path)]  # fmt: skip
    done = subprocess.run(
        command, env=child_env(OMP_NUM_THREADS="1"), capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stderr[-4000:]
    result = json.loads((tmp_path / "weights.json").read_text())
    # its layers (GPT2Block, from _no_split_modules) were sharded as units of their own, then the model
    assert result["sharded"] == ["FSDPGPT2LMHeadModel", "FSDPGPT2Block", "FSDPGPT2Block"]
    for folder in (tmp_path / "final", tmp_path / "run" / "checkpoint-2"):
        assert json.loads((folder / "config.json").read_text())["architectures"] == ["GPT2LMHeadModel"]
    loaded = transformers.GPT2LMHeadModel.from_pretrained(tmp_path / "final")
    assert loaded.lm_head.weight is loaded.transformer.wte.weight  # still tied
    assert {k: v.tolist() for k, v in loaded.state_dict().items()} == result["weights"]
