"""One rank of a data-parallel run, started by ``torchrun`` from tests/test_distributed.py with the
checkout on ``PYTHONPATH``: ``distributed_run.py OUT accumulate|evaluate`` or
``distributed_run.py OUT stop|dropout [CHECKPOINT]``."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import torch

from lifecycle import Trainer, TrainerCallback
from tests.support.seen import Indexed, Noting
from tests.support.sequences import Sequences, Tagger, pad_batch, token_metrics
from tests.support.workers import arguments, leave_process_group, trained


class AskOnRankOne(TrainerCallback):
    """Only rank 1 asks for an evaluation, at step 1, and to stop, at step 3: every rank must do so."""

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if os.environ["RANK"] == "1" and state.global_step == 1:
            control.should_evaluate = True
        if os.environ["RANK"] == "1" and state.global_step == 3:
            control.should_training_stop = True


class Dropping(torch.nn.Module):
    """A classifier with dropout: what it learns depends on every random draw of its rank."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.linear = torch.nn.Linear(4, 2)
        self.dropout = torch.nn.Dropout(0.5)

    def forward(self, x: torch.Tensor, labels: torch.Tensor, index: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"loss": torch.nn.functional.cross_entropy(self.linear(self.dropout(x)), labels)}


class SeedPerRank(TrainerCallback):
    """Each rank draws its own random numbers (its own dropout masks), as with per-rank augmentation."""

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        torch.manual_seed(1000 + int(os.environ["RANK"]))


def train_with_dropout(out: Path, resume_from: str | None) -> None:
    """Eight steps, saving every two and logging every three, from scratch or from a checkpoint."""
    rank = int(os.environ["RANK"])
    model = Dropping()
    args = arguments(out, max_steps=8, logging_steps=3, save_strategy="steps", save_steps=2)
    trainer = Trainer(model, args, train_dataset=Indexed(40), callbacks=[SeedPerRank()])
    trainer.train(resume_from_checkpoint=resume_from)
    result = trained(model.parameters(), trainer.state.log_history)
    (out / f"rank{rank}.json").write_text(json.dumps(result))


def accumulate(out: Path) -> None:
    """Windows of two micro-batches: DistributedDataParallel should all-reduce once per window."""
    from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook

    rank = int(os.environ["RANK"])
    reductions: list[int] = []

    class CountReductions(TrainerCallback):
        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            def counted(group, bucket):  # type: ignore[no-untyped-def]  # DDP checks the annotations
                reductions.append(state.global_step)
                return allreduce_hook(group, bucket)

            trainer.model_wrapped.register_comm_hook(None, counted)

    # one epoch: 5 micro-batches of 4 per rank, in windows of 2, 2 and 1
    args = arguments(out, max_steps=3, gradient_accumulation_steps=2, save_strategy="no")
    model = Noting()
    trainer = Trainer(model, args, train_dataset=Indexed(40), callbacks=[CountReductions()])
    trainer.train()
    result = {"reductions": reductions, "params": [p.detach().tolist() for p in model.parameters()]}
    (out / f"rank{rank}.json").write_text(json.dumps(result))


def evaluate(out: Path) -> None:
    """``evaluate()`` and ``predict()`` of 11 sequences in batches of 4, shared out among the ranks."""
    rank = int(os.environ["RANK"])
    args = arguments(out, per_device_eval_batch_size=4)
    data = Sequences(11)
    trainer = Trainer(
        Tagger(), args, data_collator=pad_batch, eval_dataset=data, compute_metrics=token_metrics
    )
    batches = len(trainer.get_eval_dataloader())
    metrics = trainer.evaluate()
    predicted = trainer.predict(data)
    logits, index = predicted.predictions
    result = {
        "batches": batches,
        "evaluate": metrics,
        "predict": predicted.metrics,
        "logits": logits.tolist(),
        "index": index.tolist(),
        "labels": predicted.label_ids.tolist(),
    }
    (out / f"rank{rank}.json").write_text(json.dumps(result))


def main(out: Path, resume_from: str | None) -> None:
    rank = int(os.environ["RANK"])
    model = Noting()
    initial = [p.detach().clone().tolist() for p in model.parameters()]
    args = arguments(out, max_steps=10, logging_steps=3, save_strategy="steps", save_steps=2)
    trainer = Trainer(
        model, args, train_dataset=Indexed(40), eval_dataset=Indexed(11), callbacks=[AskOnRankOne()]
    )
    trainer.train(resume_from_checkpoint=resume_from)
    result = {
        "global_step": trainer.state.global_step,
        "world_process_zero": trainer.state.is_world_process_zero,
        "initial": initial,
        "params": [p.detach().tolist() for p in model.parameters()],
        "seen": model.seen,
        "losses": [entry["loss"] for entry in trainer.state.log_history if "loss" in entry],
        "evaluated": [(e["step"], e["eval_loss"]) for e in trainer.state.log_history if "eval_loss" in e],
    }
    (out / f"rank{rank}.json").write_text(json.dumps(result))


if __name__ == "__main__":
    torch.set_num_threads(1)
    if sys.argv[2] == "stop":
        main(Path(sys.argv[1]), sys.argv[3] if len(sys.argv) > 3 else None)
    elif sys.argv[2] == "accumulate":
        accumulate(Path(sys.argv[1]))
    elif sys.argv[2] == "evaluate":
        evaluate(Path(sys.argv[1]))
    else:  # "dropout" [checkpoint to resume from]
        train_with_dropout(Path(sys.argv[1]), sys.argv[3] if len(sys.argv) > 3 else None)
    leave_process_group()
