"""One worker of a run that ``torchrun`` may restart, started from tests/test_elastic.py with the
checkout on ``PYTHONPATH``: ``elastic_run.py OUT [die]``.

Two ranks train eight steps, saving every two; with ``die``, rank 1 of the first attempt kills itself
with SIGKILL at step 5, so the restarted workers must resume from checkpoint-4 by themselves.
"""

from __future__ import annotations

import gc
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import torch

from lifecycle import Trainer, TrainerCallback, TrainingArguments
from tests.support.helpers import Classifier, Examples


class DieAtStepFive(TrainerCallback):
    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        first_attempt = os.environ["TORCHELASTIC_RESTART_COUNT"] == "0"
        if first_attempt and os.environ["RANK"] == "1" and state.global_step == 5:
            os.kill(os.getpid(), signal.SIGKILL)


def main(out: Path, die: bool) -> None:
    rank = int(os.environ["RANK"])
    args = TrainingArguments(
        output_dir=str(out / "run"),
        max_steps=8,
        save_steps=2,
        logging_steps=1,
        per_device_train_batch_size=4,
        learning_rate=0.1,
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
    )
    trainer = Trainer(
        Classifier(), args, train_dataset=Examples(40), callbacks=[DieAtStepFive()] if die else []
    )
    trainer.train()
    assert trainer.run is not None
    history = [{k: v for k, v in e.items() if not k.startswith("train_")} for e in trainer.state.log_history]
    result = {
        "attempt": int(os.environ["TORCHELASTIC_RESTART_COUNT"]),
        "resumed_from": trainer.run.resume_from.name if trainer.run.resume_from else None,
        "global_step": trainer.state.global_step,
        "params": [p.detach().tolist() for p in trainer.model.parameters()],
        "log_history": history,
    }
    (out / f"rank{rank}.json").write_text(json.dumps(result))


if __name__ == "__main__":
    torch.set_num_threads(1)
    main(Path(sys.argv[1]), sys.argv[2:] == ["die"])
    gc.collect()  # the trainer and its DistributedDataParallel go before the process group they use
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()
