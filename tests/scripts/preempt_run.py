"""Train a small run in a process of its own (``preempt_run.py OUTPUT_DIR [--save-on-interrupt]``),
resuming from the newest valid checkpoint when there is one; each step takes a moment, so that a test
can send a real signal mid-run. Prints ``step N`` after each step; on a clean end it writes the final
parameters and log history (``final.safetensors``, ``history.json``).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from safetensors.torch import save_file

from lifecycle import PrinterCallback, TrainerCallback
from lifecycle.checkpoint import list_checkpoints
from tests.support.resume import comparable, params, trainer


class Slow(TrainerCallback):
    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        time.sleep(0.05)
        print(f"step {state.global_step}", flush=True)


SCENARIO = {"max_steps": 40, "save_steps": 100, "logging_steps": 3, "eval_steps": 10, "report_to": "jsonl"}


def main(output_dir: Path, save_on_interrupt: bool, signals: list[str]) -> None:
    t = trainer(
        output_dir, Slow(), save_on_interrupt=save_on_interrupt, preemption_signals=signals, **SCENARIO
    )
    t.pop_callback(PrinterCallback)
    t.train(resume_from_checkpoint=True if list_checkpoints(output_dir) else None)
    save_file(params(t), str(output_dir / "final.safetensors"))
    (output_dir / "history.json").write_text(json.dumps(comparable(t.state.log_history)))


if __name__ == "__main__":
    flags = sys.argv[2:]
    signals = [flags[flags.index("--signals") + 1]] if "--signals" in flags else ["SIGTERM"]
    main(Path(sys.argv[1]), "--save-on-interrupt" in flags, signals)
