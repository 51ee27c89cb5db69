"""One node's only worker of a run on two nodes, started by one of two ``torchrun --nnodes 2``
launchers from tests/test_nodes.py with the checkout on ``PYTHONPATH``: ``nodes_run.py OUT``."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch

from lifecycle import Trainer
from tests.support.helpers import Classifier, Examples
from tests.support.workers import arguments, leave_process_group, trained


def main(out: Path) -> None:
    args = arguments(out, max_steps=4, save_steps=2, logging_steps=2, report_to="jsonl")
    trainer = Trainer(Classifier(), args, train_dataset=Examples(40))
    trainer.train()
    state = trainer.state
    result = {
        "node": int(os.environ["GROUP_RANK"]),
        "local_rank": trainer.topology.local_rank,
        "world_process_zero": state.is_world_process_zero,
        "local_process_zero": state.is_local_process_zero,
        **trained(trainer.model.parameters(), state.log_history),
    }
    (out / f"rank{trainer.topology.rank}.json").write_text(json.dumps(result))


if __name__ == "__main__":
    torch.set_num_threads(1)
    main(Path(sys.argv[1]))
    leave_process_group()
