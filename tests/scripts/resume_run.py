"""Train the resume scenario in a process of its own (``resume_run.py OUTPUT_DIR``), resuming from the
newest valid checkpoint when there is one, then write the final parameters and log history.

Started, with the checkout on ``PYTHONPATH``, by the SIGKILL test of ``tests/test_resume.py``, which
kills such processes at random moments and compares what the last one leaves with a clean run.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from lifecycle import PrinterCallback, TrainerCallback
from lifecycle.checkpoint import list_checkpoints
from tests.support.resume import comparable, params, trainer


class Announce(TrainerCallback):
    """Tells the parent process each time this one has written a checkpoint."""

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        print(f"saved {state.global_step}", flush=True)


KILL_SCENARIO = {
    "train_size": 61,
    "ballast": 400_000,
    "save_total_limit": 2,
    "logging_steps": 4,
    "eval_steps": 5,
    "num_train_epochs": 2,
}


def run_scenario(output_dir: Path) -> None:
    """Train (resuming when a checkpoint exists), then write what the run ended with."""
    torch.set_num_threads(1)
    logging.disable(logging.WARNING)
    settings = dict(KILL_SCENARIO)
    t = trainer(output_dir, Announce(), **settings)  # type: ignore[arg-type]
    t.remove_callback(PrinterCallback)  # standard output carries the "saved" signal only
    t.train(resume_from_checkpoint=True if list_checkpoints(output_dir) else None)
    save_file(params(t), str(output_dir / "final.safetensors"))
    (output_dir / "history.json").write_text(json.dumps(comparable(t.state.log_history)))


if __name__ == "__main__":
    run_scenario(Path(sys.argv[1]))
