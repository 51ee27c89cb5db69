"""One rank of a tiny GPT-2 (tied embeddings, ``_no_split_modules``) trained with FSDP2, started by
``torchrun`` from tests/test_fsdp.py: ``fsdp_transformers_run.py OUT``. A full-state checkpoint at step
2; ``Trainer.save_model`` into ``OUT/final``; rank 0 writes the gathered weights to ``OUT/weights.json``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

from lifecycle import Trainer, TrainingArguments
from tests.support.tiny_models import pad_causal_lm, tiny_gpt2, token_rows
from tests.support.workers import leave_process_group


def main(out: Path) -> None:
    args = TrainingArguments(
        output_dir=str(out / "run"), use_cpu=True, report_to="none", disable_tqdm=True, max_steps=2,
        per_device_train_batch_size=2, save_steps=2, fsdp="full_shard auto_wrap",
    )  # fmt: skip
    trainer = Trainer(tiny_gpt2(), args, data_collator=pad_causal_lm, train_dataset=token_rows())
    trainer.train()
    trainer.save_model(str(out / "final"))
    weights = get_model_state_dict(trainer.model, options=StateDictOptions(full_state_dict=True))
    if torch.distributed.get_rank() == 0:
        blocks = [type(m).__name__ for m in trainer.model.modules() if type(m).__name__.startswith("FSDP")]
        result = {"weights": {k: v.tolist() for k, v in weights.items()}, "sharded": blocks}
        (out / "weights.json").write_text(json.dumps(result))


if __name__ == "__main__":
    torch.set_num_threads(1)
    main(Path(sys.argv[1]))
    leave_process_group()
