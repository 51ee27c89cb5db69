"""TrainingArguments: Hugging Face's names and defaults, as validated attrs data.

A bad value fails at construction with a message naming the field and the values it accepts.
"""

from __future__ import annotations

import os
from typing import Any

import attrs

__all__ = ["ArgumentError", "TrainingArguments"]

INTERVALS = ("no", "steps", "epoch")
SAVE_STRATEGIES = ("no", "steps", "epoch", "best")
SCHEDULERS = ("linear", "constant", "constant_with_warmup", "cosine")


class ArgumentError(ValueError):
    """A TrainingArguments value that cannot work; the message names the field."""


def _choice(allowed: tuple[str, ...]) -> Any:
    def check(inst: Any, attribute: attrs.Attribute, value: Any) -> None:
        if value not in allowed:
            raise ArgumentError(
                f"TrainingArguments.{attribute.name}={value!r} is not allowed; "
                f"choose one of {', '.join(map(repr, allowed))}"
            )

    return check


def _at_least(low: float, *, strict: bool = False) -> Any:
    def check(inst: Any, attribute: attrs.Attribute, value: Any) -> None:
        if value is None:
            return
        if (value <= low) if strict else (value < low):
            bound = f"> {low}" if strict else f">= {low}"
            raise ArgumentError(f"TrainingArguments.{attribute.name}={value!r} must be {bound}")

    return check


def _strategy(value: Any) -> Any:
    """Accept Hugging Face's enum members as well as plain strings."""
    return getattr(value, "value", value)


@attrs.define(kw_only=True)
class TrainingArguments:
    """What to train for, how often to log, evaluate and save, and with which numerics."""

    output_dir: str = attrs.field(default="runs/default", converter=os.fspath)
    overwrite_output_dir: bool = False
    run_name: str | None = None
    num_train_epochs: float = attrs.field(default=3.0, validator=_at_least(0))
    max_steps: int = -1
    per_device_train_batch_size: int = attrs.field(default=8, validator=_at_least(1))
    per_device_eval_batch_size: int = attrs.field(default=8, validator=_at_least(1))
    gradient_accumulation_steps: int = attrs.field(default=1, validator=_at_least(1))
    learning_rate: float = attrs.field(default=5e-5, validator=_at_least(0))
    weight_decay: float = attrs.field(default=0.0, validator=_at_least(0))
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-8
    max_grad_norm: float = attrs.field(default=1.0, validator=_at_least(0))
    lr_scheduler_type: str = attrs.field(default="linear", converter=_strategy, validator=_choice(SCHEDULERS))
    warmup_steps: float = attrs.field(default=0, validator=_at_least(0))
    logging_dir: str | None = None
    logging_strategy: str = attrs.field(default="steps", converter=_strategy, validator=_choice(INTERVALS))
    logging_steps: float = attrs.field(default=500, validator=_at_least(0, strict=True))
    logging_first_step: bool = False
    logging_nan_inf_filter: bool = True
    eval_strategy: str = attrs.field(default="no", converter=_strategy, validator=_choice(INTERVALS))
    eval_steps: float | None = attrs.field(default=None, validator=_at_least(0, strict=True))
    eval_delay: float = attrs.field(default=0, validator=_at_least(0))
    eval_on_start: bool = False
    save_strategy: str = attrs.field(default="steps", converter=_strategy, validator=_choice(SAVE_STRATEGIES))
    save_steps: float = attrs.field(default=500, validator=_at_least(0, strict=True))
    save_total_limit: int | None = attrs.field(default=None, validator=_at_least(1))
    load_best_model_at_end: bool = False
    metric_for_best_model: str | None = None
    greater_is_better: bool | None = None
    restore_callback_states_from_checkpoint: bool = True
    seed: int = 42
    data_seed: int | None = None
    report_to: Any = None
    disable_tqdm: bool = False
    dataloader_num_workers: int = attrs.field(default=0, validator=_at_least(0))
    dataloader_drop_last: bool = False
    use_cpu: bool = False
    bf16: bool = False
    fp16: bool = False

    def __attrs_post_init__(self) -> None:
        if self.bf16 and self.fp16:
            raise ArgumentError("TrainingArguments: bf16 and fp16 cannot both be True; pick one")
        if self.max_steps <= 0 and self.num_train_epochs <= 0:
            raise ArgumentError(
                "TrainingArguments: set max_steps > 0 or num_train_epochs > 0, or there is nothing to train"
            )
        if self.eval_strategy == "steps" and self.eval_steps is None:
            self.eval_steps = self.logging_steps
        if self.run_name is None:
            self.run_name = os.path.basename(os.path.normpath(self.output_dir)) or "run"
        if (
            self.load_best_model_at_end or self.save_strategy == "best"
        ) and self.metric_for_best_model is None:
            self.metric_for_best_model = "loss"
        if self.metric_for_best_model is not None and self.greater_is_better is None:
            self.greater_is_better = not self.metric_for_best_model.endswith("loss")
        if self.load_best_model_at_end:
            self._check_best_model_strategies()

    def _check_best_model_strategies(self) -> None:
        if self.save_strategy == "best":
            return
        if self.eval_strategy != self.save_strategy:
            raise ArgumentError(
                "TrainingArguments.load_best_model_at_end needs save_strategy to match eval_strategy "
                f"(got save_strategy={self.save_strategy!r}, eval_strategy={self.eval_strategy!r})"
            )
        if self.eval_strategy == "steps":
            assert self.eval_steps is not None
            if self.save_steps % self.eval_steps != 0:
                raise ArgumentError(
                    "TrainingArguments.load_best_model_at_end needs save_steps to be a multiple of "
                    f"eval_steps (got save_steps={self.save_steps}, eval_steps={self.eval_steps})"
                )

    @property
    def train_batch_size(self) -> int:
        return self.per_device_train_batch_size

    @property
    def eval_batch_size(self) -> int:
        return self.per_device_eval_batch_size

    def to_dict(self) -> dict[str, Any]:
        """Plain values, for trackers and for the checkpoint's record of how the run was set up."""
        return attrs.asdict(self, value_serializer=lambda _i, _a, v: v if _jsonable(v) else repr(v))


def _jsonable(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool, list, tuple, dict))
