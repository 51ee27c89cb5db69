"""Mistakes found before any work: what ``train()`` is given, checked against what its arguments ask.

Each finding is an :class:`~lifecycle.ArgumentError` that names the argument and the fix, raised
before the first batch is loaded, so no time is spent on a run that would fail later.
"""

from __future__ import annotations

from typing import Any

from lifecycle.args import ArgumentError, TrainingArguments

__all__ = ["check_training"]


def check_training(args: TrainingArguments, train_dataset: Any, eval_dataset: Any) -> None:
    """Refuse a training that could not do what ``args`` asks of it."""
    if train_dataset is None:
        raise ArgumentError("Trainer.train() needs a train_dataset: Trainer(model, args, train_dataset=...)")
    evaluates = {
        f"eval_strategy={args.eval_strategy!r}": args.eval_strategy != "no",
        "eval_on_start=True": args.eval_on_start,
        "load_best_model_at_end=True": args.load_best_model_at_end,
    }
    if eval_dataset is None:
        for asked, wanted in evaluates.items():
            if wanted:
                raise ArgumentError(
                    f"TrainingArguments.{asked} evaluates during training, but the Trainer has no "
                    "eval_dataset: pass Trainer(eval_dataset=...) or set eval_strategy='no'"
                )
    if args.save_strategy == "best" and args.eval_strategy == "no":
        raise ArgumentError(
            "TrainingArguments.save_strategy='best' saves after an evaluation that finds a new best, but "
            "eval_strategy='no' never evaluates: set eval_strategy to 'steps' or 'epoch'"
        )
    if _empty(train_dataset):
        raise ArgumentError(
            "Trainer.train(): the train_dataset is empty (len() is 0); there is nothing to train on"
        )


def _empty(dataset: Any) -> bool:
    try:
        return len(dataset) == 0
    except TypeError:  # iterable data: found out when its first pass yields nothing
        return False
