"""Train the tiny model into ``OUTPUT_DIR`` (a checkpoint every 5 steps, the metrics log on), resuming
from the newest checkpoint when there is one: ``trackers_killed_run.py OUTPUT_DIR [KILL_AT_STEP]``.
``$REPORT_TO`` (comma-separated tracker names) picks the trackers; by default the metrics log alone.

With ``KILL_AT_STEP``, the process kills itself with SIGKILL at the first log of that step, once the
metrics log holds every line logged before it: what a killed run leaves behind. Started, with the
checkout on ``PYTHONPATH``, by ``tests/test_trackers_{jsonl,mlflow,dvclive,aim,clearml}.py``.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

from lifecycle import TrainerCallback
from lifecycle.checkpoint import list_checkpoints
from lifecycle.integrations import TrackerCallback
from tests.support.trackers import make_trainer


class Kill(TrainerCallback):
    """SIGKILL at the first log of ``step``, after the trackers have caught up."""

    def __init__(self, step: int):
        self.step = step
        self.trackers: TrackerCallback | None = None

    def on_log(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step == self.step:
            assert self.trackers is not None
            self.trackers.flush(state)
            os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    out = Path(sys.argv[1])
    kill = Kill(int(sys.argv[2])) if len(sys.argv) > 2 else None
    report_to = os.environ.get("REPORT_TO")
    trainer = make_trainer(
        out,
        report_to=report_to.split(",") if report_to else None,
        save_strategy="steps",
        save_steps=5,
        callbacks=[kill] if kill is not None else [],
    )
    if kill is not None:
        (kill.trackers,) = [cb for cb in trainer.callbacks if isinstance(cb, TrackerCallback)]
    trainer.train(resume_from_checkpoint=True if list_checkpoints(out) else None)
