"""A real data-parallel run: two ``torchrun`` processes on the CPU (gloo)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lifecycle.checkpoint import list_checkpoints, verify_checkpoint

ROOT = Path(__file__).resolve().parent.parent


def test_two_ranks_share_the_data_agree_to_stop_and_save_once(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               str(ROOT / "tests" / "distributed_run.py"), str(tmp_path)]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
    except subprocess.TimeoutExpired:
        pytest.fail("the ranks hung: they did not agree on when to stop")
    written = sorted(p.name for p in tmp_path.glob("rank*.json"))
    assert done.returncode == 0, f"results written: {written}\n{done.stderr[-4000:]}"
    zero, one = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))

    # rank 1 alone asked to stop at step 3; the flag was all-reduced, so rank 0 stopped there too
    assert zero["global_step"] == one["global_step"] == 3
    assert (zero["world_process_zero"], one["world_process_zero"]) == (True, False)

    # DistributedDataParallel kept the replicas identical, and they did learn
    assert zero["params"] == one["params"] and zero["params"] != zero["initial"]
    assert zero["losses"] == one["losses"] and len(zero["losses"]) == 3  # the mean over ranks

    # each rank trained on its own share of the examples
    assert len(zero["seen"]) == len(one["seen"]) == 3 * 4
    assert not set(zero["seen"]) & set(one["seen"])

    # one checkpoint at step 2, written by rank 0 alone, whole
    saved = list_checkpoints(tmp_path / "run")
    assert [p.name for p in saved] == ["checkpoint-2"]
    verify_checkpoint(saved[0])
    assert not [p for p in (tmp_path / "run").iterdir() if p.name.startswith(".")]  # no leftovers
