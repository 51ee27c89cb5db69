"""EarlyStoppingCallback: stop when the tracked metric stops improving. Its counter is saved with
every checkpoint and restored on resume (``state_dict`` / ``load_state_dict``)."""

from __future__ import annotations

import logging
from typing import Any

from lifecycle.args import TrainingArguments
from lifecycle.callbacks.base import TrainerCallback
from lifecycle.control import TrainerControl
from lifecycle.state import TrainerState

__all__ = ["EarlyStoppingCallback"]

logger = logging.getLogger(__name__)


class EarlyStoppingCallback(TrainerCallback):
    """Sets ``should_training_stop`` after ``early_stopping_patience`` evaluations without an
    improvement larger than ``early_stopping_threshold`` over ``state.best_metric``."""

    def __init__(self, early_stopping_patience: int = 1, early_stopping_threshold: float = 0.0):
        if early_stopping_patience < 1:
            raise ValueError(f"early_stopping_patience must be >= 1, got {early_stopping_patience}")
        self.early_stopping_patience = early_stopping_patience
        self.early_stopping_threshold = early_stopping_threshold
        self.early_stopping_patience_counter = 0

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if args.metric_for_best_model is None:
            raise ValueError("EarlyStoppingCallback needs TrainingArguments.metric_for_best_model")
        if args.eval_strategy == "no":
            raise ValueError("EarlyStoppingCallback needs TrainingArguments.eval_strategy 'steps' or 'epoch'")
        if not args.load_best_model_at_end:
            logger.warning(
                "EarlyStoppingCallback without load_best_model_at_end: the best model is not reloaded"
            )

    def on_evaluate(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        metrics: dict[str, float] | None = None,
        **kwargs: Any,
    ) -> None:
        assert args.metric_for_best_model is not None
        name = args.metric_for_best_model
        name = name if name.startswith("eval_") else f"eval_{name}"
        value = (metrics or {}).get(name)
        if value is None:
            logger.warning("early stopping needs metric %r, absent from the evaluation; skipped", name)
            return
        best = state.best_metric
        improved = best is None or (
            (value > best if args.greater_is_better else value < best)
            and abs(value - best) > self.early_stopping_threshold
        )
        self.early_stopping_patience_counter = 0 if improved else self.early_stopping_patience_counter + 1
        if self.early_stopping_patience_counter >= self.early_stopping_patience:
            control.should_training_stop = True

    def state_dict(self) -> dict[str, Any]:
        return {"early_stopping_patience_counter": self.early_stopping_patience_counter}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.early_stopping_patience_counter = int(state["early_stopping_patience_counter"])
