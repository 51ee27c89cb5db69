"""A run on two nodes: two ``torchrun --nnodes 2`` launchers on this machine (c10d rendezvous on
localhost), one worker each."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lifecycle.checkpoint import list_checkpoints, verify_checkpoint
from lifecycle.integrations.jsonl import read_jsonl
from tests.support.processes import SCRIPTS, child_env, free_port

pytestmark = pytest.mark.slow


def test_two_nodes_train_together_and_global_rank_zero_alone_writes(tmp_path: Path) -> None:
    endpoint = f"127.0.0.1:{free_port()}"
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
               "--rdzv-backend", "c10d", "--rdzv-endpoint", endpoint, "--rdzv-id", "nodes",
               str(SCRIPTS / "nodes_run.py"), str(tmp_path)]  # fmt: skip
    env = child_env(OMP_NUM_THREADS="1")
    launchers = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(2)]  # fmt: skip
    try:
        outputs = [launcher.communicate(timeout=120) for launcher in launchers]
    except subprocess.TimeoutExpired:
        for launcher in launchers:
            launcher.kill()
        pytest.fail("the two nodes did not meet, or hung")
    for launcher, (_, stderr) in zip(launchers, outputs, strict=True):
        assert launcher.returncode == 0, stderr[-4000:]
    zero, one = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))

    # one worker on each node: each the first of its node, global rank 0 the first of all
    assert {zero["node"], one["node"]} == {0, 1} and zero["local_rank"] == one["local_rank"] == 0
    assert (zero["world_process_zero"], one["world_process_zero"]) == (True, False)
    assert zero["local_process_zero"] and one["local_process_zero"]
    # the nodes trained one model together
    assert zero["params"] == one["params"] and zero["log_history"] == one["log_history"]

    # each node's first worker printed the logs on its node; the launchers' outputs say so
    for stdout, _ in outputs:
        assert stdout.count("'loss'") == 2  # steps 2 and 4

    # global rank 0 alone wrote the checkpoints and the tracker's file: once each, whole
    run = tmp_path / "run"
    assert [p.name for p in list_checkpoints(run)] == ["checkpoint-2", "checkpoint-4"]
    for checkpoint in list_checkpoints(run):
        verify_checkpoint(checkpoint)
    logged = [entry for entry in read_jsonl(run / "metrics.jsonl") if "loss" in entry]
    assert [entry["step"] for entry in logged] == [2, 4]
