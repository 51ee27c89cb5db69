"""One node's only worker of a run on two nodes, started by one of two ``torchrun --nnodes 2``
launchers from tests/test_nodes.py with the checkout on ``PYTHONPATH``: ``nodes_run.py OUT``."""

from __future__ import annotations

import gc
import json
import os
import sys
from pathlib import Path

import torch

from lifecycle import Trainer, TrainingArguments
from tests.support.helpers import Classifier, Examples


def main(out: Path) -> None:
    args = TrainingArguments(
        output_dir=str(out / "run"),
        max_steps=4,
        save_steps=2,
        logging_steps=2,
        per_device_train_batch_size=4,
        learning_rate=0.1,
        report_to="jsonl",
        disable_tqdm=True,  # logs printed on each node's first process
        use_cpu=True,
    )
    trainer = Trainer(Classifier(), args, train_dataset=Examples(40))
    trainer.train()
    state = trainer.state
    result = {
        "node": int(os.environ["GROUP_RANK"]),
        "local_rank": trainer.topology.local_rank,
        "world_process_zero": state.is_world_process_zero,
        "local_process_zero": state.is_local_process_zero,
        "params": [p.detach().tolist() for p in trainer.model.parameters()],
        "log_history": [
            {k: v for k, v in e.items() if not k.startswith("train_")} for e in state.log_history
        ],
    }
    (out / f"rank{trainer.topology.rank}.json").write_text(json.dumps(result))


if __name__ == "__main__":
    torch.set_num_threads(1)
    main(Path(sys.argv[1]))
    gc.collect()  # the trainer and its DistributedDataParallel go before the process group they use
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()
