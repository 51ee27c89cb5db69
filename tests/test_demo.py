"""``lifecycle demo``, run as a user runs it: every promised output is on disk and readable."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from lifecycle.checkpoint import list_checkpoints, verify_checkpoint

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    "graphviz",
    [
        pytest.param(True, marks=pytest.mark.needs_program("dot"), id="with-dot"),
        pytest.param(False, id="without-dot"),
    ],
)
def test_demo_writes_checkpoints_metrics_tensorboard_graph_and_trace(tmp_path: Path, graphviz: bool) -> None:
    out = tmp_path / "demo"
    env = dict(os.environ) if graphviz else {**os.environ, "PATH": str(tmp_path / "empty")}
    done = subprocess.run(
        [sys.executable, "-m", "lifecycle.cli", "demo", "--output-dir", str(out), "--no-progress"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"everything is under {out.resolve()}" in done.stdout

    checkpoints = list_checkpoints(out)
    assert 1 <= len(checkpoints) <= 2  # save_total_limit=2
    for folder in checkpoints:
        verify_checkpoint(folder)
    final = json.loads((checkpoints[-1] / "trainer_state.json").read_text())
    assert final["best_model_checkpoint"] and (out / final["best_model_checkpoint"]).is_dir()
    assert final["best_metric"] > 0.9  # the spiral is learned

    logs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    evaluations = [entry for entry in logs if "eval_accuracy" in entry]
    assert evaluations and max(e["eval_accuracy"] for e in evaluations) == final["best_metric"]

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (run_dir,) = (out / "runs").iterdir()
    events = EventAccumulator(str(run_dir))
    events.Reload()
    accuracy = events.Scalars("eval/accuracy")
    assert [round(a.value, 6) for a in accuracy] == [round(e["eval_accuracy"], 6) for e in evaluations]

    if graphviz:
        assert ET.fromstring((out / "lifecycle.svg").read_bytes()).tag.endswith("svg")
    else:  # no Graphviz: the Mermaid text instead, with every state
        mermaid = (out / "lifecycle.mmd").read_text()
        assert "flowchart" in mermaid and all(s in mermaid for s in ("prepare", "boundary", "evaluate"))
        assert not (out / "lifecycle.svg").exists()

    trace = json.loads((out / "trace.json").read_text())
    assert trace["transitions"]["step_end"]["count"] == final["global_step"]
