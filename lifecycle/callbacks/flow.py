"""DefaultFlowCallback: sets the log / evaluate / save / stop flags from the arguments.

The flags it sets are the guards of the lifecycle's ``boundary`` exits, so this callback is where the
``*_strategy`` and ``*_steps`` arguments turn into the path the machine takes.
"""

from __future__ import annotations

from typing import Any

from lifecycle.args import TrainingArguments
from lifecycle.callbacks.base import TrainerCallback
from lifecycle.control import TrainerControl
from lifecycle.state import TrainerState

__all__ = ["DefaultFlowCallback"]


class DefaultFlowCallback(TrainerCallback):
    """Hugging Face's default flow: logging, evaluation and saving by steps or epochs."""

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> TrainerControl:
        step = state.global_step
        if step == 1 and args.logging_first_step:
            control.should_log = True
        if args.logging_strategy == "steps" and step % state.logging_steps == 0:
            control.should_log = True
        eval_by_steps = args.eval_strategy == "steps" and args.eval_delay <= step
        if eval_by_steps and step % state.eval_steps == 0:
            control.should_evaluate = True
        if args.save_strategy == "steps" and state.save_steps > 0 and step % state.save_steps == 0:
            control.should_save = True
        if step >= state.max_steps:
            control.should_training_stop = True
            if eval_by_steps and step % state.eval_steps != 0:
                control.should_evaluate = True
            if args.save_strategy == "steps":
                control.should_save = True
        return control

    def on_epoch_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> TrainerControl:
        if args.logging_strategy == "epoch":
            control.should_log = True
        if args.eval_strategy == "epoch" and args.eval_delay <= (state.epoch or 0):
            control.should_evaluate = True
        if args.save_strategy == "epoch":
            control.should_save = True
        return control
