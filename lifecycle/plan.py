"""The step arithmetic of a run: how many steps and epochs, and the step intervals, as a pure function.

Hugging Face's rules: ``max_steps > 0`` wins (``num_train_epochs = ceil(max_steps / updates_per_epoch)``),
else ``max_steps = ceil(num_train_epochs * updates_per_epoch)``; an epoch of ``batches`` micro-batches
makes ``ceil(batches / gradient_accumulation_steps)`` optimizer steps (a remainder window is a step);
``logging_steps``, ``eval_steps`` and ``save_steps`` below 1 are fractions of ``max_steps``. Data without
a length is one long epoch of ``max_steps`` steps.
"""

from __future__ import annotations

import math

import attrs

from lifecycle.args import ArgumentError, TrainingArguments
from lifecycle.state import TrainerState

__all__ = ["StepPlan", "plan_steps", "steps_of"]


@attrs.frozen
class StepPlan:
    """How long a run trains and how often it logs, evaluates and saves, in optimizer steps."""

    batches_per_epoch: int
    """Micro-batches in one epoch (data without a length: ``max_steps * gradient_accumulation_steps``)."""
    updates_per_epoch: int
    """Optimizer steps in one epoch."""
    max_steps: int
    num_train_epochs: int
    logging_steps: int
    eval_steps: int
    save_steps: int
    streaming: bool = False
    """The data has no length: one epoch read pass after pass until ``max_steps``."""

    def apply_to(self, state: TrainerState, train_batch_size: int) -> None:
        """Record the plan in the state callbacks see (transformers' fields, and the epoch's length)."""
        state.max_steps = self.max_steps
        state.num_train_epochs = self.num_train_epochs
        state.train_batch_size = train_batch_size
        state.logging_steps = self.logging_steps
        state.eval_steps = self.eval_steps
        state.save_steps = self.save_steps
        state.position.batches_in_epoch = self.batches_per_epoch


def steps_of(value: float, max_steps: int) -> int:
    """A ``*_steps`` argument in steps: below 1 it is a fraction of ``max_steps``."""
    return math.ceil(max_steps * value) if value < 1 else int(value)


def plan_steps(args: TrainingArguments, batches: int | None) -> StepPlan:
    """The plan for training on ``batches`` micro-batches an epoch (``None``: data without a length)."""
    streaming = batches is None
    if batches is None:
        if args.max_steps <= 0:
            raise ArgumentError(
                "max_steps: the training data has no length (an iterable dataset), so "
                "TrainingArguments.max_steps must say how many steps to train (num_train_epochs cannot)"
            )
        batches = args.max_steps * args.gradient_accumulation_steps
    if batches == 0:
        raise ArgumentError(
            "the training data gives no batch: an empty train_dataset, or dataloader_drop_last=True with "
            "fewer examples per process than per_device_train_batch_size"
        )
    updates_per_epoch = max(math.ceil(batches / args.gradient_accumulation_steps), 1)
    if args.max_steps > 0:
        max_steps = args.max_steps
        epochs = math.ceil(max_steps / updates_per_epoch)
    else:
        max_steps = math.ceil(args.num_train_epochs * updates_per_epoch)
        epochs = math.ceil(args.num_train_epochs)
    return StepPlan(
        batches_per_epoch=batches,
        updates_per_epoch=updates_per_epoch,
        max_steps=max_steps,
        num_train_epochs=epochs,
        logging_steps=steps_of(args.logging_steps, max_steps),
        eval_steps=steps_of(args.eval_steps or args.logging_steps, max_steps),
        save_steps=steps_of(args.save_steps, max_steps),
        streaming=streaming,
    )
