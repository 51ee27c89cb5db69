"""One worker of a run that ``torchrun`` may restart, started from tests/test_elastic.py with the
checkout on ``PYTHONPATH``: ``elastic_run.py OUT [die]``.

Two ranks train eight steps, saving every two; with ``die``, rank 1 of the first attempt kills itself
with SIGKILL at step 5, so the restarted workers must resume from checkpoint-4 by themselves.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import torch

from lifecycle import Trainer, TrainerCallback
from tests.support.helpers import Classifier, Examples
from tests.support.workers import arguments, leave_process_group, trained


class DieAtStepFive(TrainerCallback):
    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        first_attempt = os.environ["TORCHELASTIC_RESTART_COUNT"] == "0"
        if first_attempt and os.environ["RANK"] == "1" and state.global_step == 5:
            os.kill(os.getpid(), signal.SIGKILL)


def main(out: Path, die: bool) -> None:
    rank = int(os.environ["RANK"])
    args = arguments(out, max_steps=8, save_steps=2, logging_steps=1)
    trainer = Trainer(
        Classifier(), args, train_dataset=Examples(40), callbacks=[DieAtStepFive()] if die else []
    )
    trainer.train()
    assert trainer.run is not None
    result = {
        "attempt": int(os.environ["TORCHELASTIC_RESTART_COUNT"]),
        "resumed_from": trainer.run.resume_from.name if trainer.run.resume_from else None,
        "global_step": trainer.state.global_step,
        **trained(trainer.model.parameters(), trainer.state.log_history),
    }
    (out / f"rank{rank}.json").write_text(json.dumps(result))


if __name__ == "__main__":
    torch.set_num_threads(1)
    main(Path(sys.argv[1]), sys.argv[2:] == ["die"])
    leave_process_group()
