"""TrainingArguments: Hugging Face's names and defaults, as validated attrs data.

A bad value fails at construction with a message naming the field and the values it accepts; a name
transformers has and this library does not is an error that says so (:mod:`lifecycle.transformers_fields`).
"""

from __future__ import annotations

import enum
import importlib.metadata
import json
import math
import os
from typing import Any

import attrs

from lifecycle import ranks
from lifecycle.argcheck import ArgumentError, mapping, path, steps, typed
from lifecycle.argcheck import at_least as _at_least
from lifecycle.argcheck import choice as _choice
from lifecycle.argcheck import strategy as _strategy
from lifecycle.fsdp_options import FsdpOptions, settle_fsdp
from lifecycle.optimizers import OPTIMIZERS, optimizer_options
from lifecycle.schedules import SCHEDULES, check_options
from lifecycle.transformers_fields import check_names

__all__ = ["ArgumentError", "TrainingArguments"]

INTERVALS = ("no", "steps", "epoch")
SAVE_STRATEGIES = ("no", "steps", "epoch", "best")
METRIC_SCHEDULES = ("reduce_lr_on_plateau", "greedy")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
METRICS_EXTRAS = ("inputs", "loss")
NONFINITE = ("stop", "skip", "warn")


def _names(value: Any) -> Any:
    """A name list given as a tuple (or one name) becomes a list; anything else is left to the validator."""
    if isinstance(value, str):
        return [value]
    return list(value) if isinstance(value, tuple) else value


def _names_only(inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and (not isinstance(value, list) or not all(isinstance(v, str) for v in value)):
        raise ArgumentError(f"TrainingArguments.{attribute.name}={value!r} must be a list of names")


def _subset(allowed: tuple[str, ...]) -> Any:
    def check(inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        _names_only(inst, attribute, value)
        unknown = [v for v in value if v not in allowed]
        if unknown:
            raise ArgumentError(
                f"TrainingArguments.{attribute.name}: {', '.join(map(repr, unknown))} not allowed; "
                f"choose among {', '.join(map(repr, allowed))}"
            )

    return check


def _signals(inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    from lifecycle.preemption import signal_number

    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ArgumentError(
            f"TrainingArguments.{attribute.name}: must be a list of signal names, got {value!r}"
        )
    for name in value:
        try:
            signal_number(name)
        except ValueError as exc:
            raise ArgumentError(f"TrainingArguments.{attribute.name}: {exc}") from None


def _no_push(inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value:
        raise ArgumentError(
            "TrainingArguments.push_to_hub=True: nothing is pushed to the Hugging Face Hub here; "
            "push the saved model yourself (Trainer.save_model, then huggingface_hub)"
        )


def _default_optim() -> str:
    """transformers' default: the fused AdamW from torch 2.8 on (read without importing torch)."""
    try:
        major, minor = (int(part) for part in importlib.metadata.version("torch").split(".")[:2])
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return "adamw_torch"
    return "adamw_torch_fused" if (major, minor) >= (2, 8) else "adamw_torch"


@attrs.define(kw_only=True, field_transformer=typed)
class TrainingArguments:
    """What to train for, how often to log, evaluate and save, and with which numerics."""

    output_dir: str = attrs.field(default="runs/default", converter=path, kw_only=False)
    overwrite_output_dir: bool = False
    run_name: str | None = None
    num_train_epochs: float = attrs.field(default=3.0, validator=_at_least(0))
    max_steps: int = -1
    per_device_train_batch_size: int = attrs.field(default=8, validator=_at_least(1))
    per_device_eval_batch_size: int = attrs.field(default=8, validator=_at_least(1))
    prediction_loss_only: bool = False
    eval_accumulation_steps: int | None = attrs.field(default=None, validator=_at_least(1))
    label_names: list[str] | None = attrs.field(default=None, converter=_names, validator=_names_only)
    include_for_metrics: list[str] = attrs.field(
        factory=list, converter=_names, validator=_subset(METRICS_EXTRAS)
    )
    gradient_accumulation_steps: int = attrs.field(default=1, validator=_at_least(1))
    learning_rate: float = attrs.field(default=5e-5, validator=_at_least(0))
    weight_decay: float = attrs.field(default=0.0, validator=_at_least(0))
    adam_beta1: float = attrs.field(default=0.9, validator=_at_least(0, below=1))
    adam_beta2: float = attrs.field(default=0.999, validator=_at_least(0, below=1))
    adam_epsilon: float = attrs.field(default=1e-8, validator=_at_least(0))
    max_grad_norm: float = attrs.field(default=1.0, validator=_at_least(0))
    lr_scheduler_type: str = attrs.field(default="linear", converter=_strategy, validator=_choice(SCHEDULES))
    warmup_steps: float = attrs.field(default=0, validator=[_at_least(0), steps])
    logging_dir: str | None = attrs.field(default=None, converter=path)
    logging_strategy: str = attrs.field(default="steps", converter=_strategy, validator=_choice(INTERVALS))
    logging_steps: float = attrs.field(default=500, validator=[_at_least(0, strict=True), steps])
    logging_first_step: bool = False
    logging_nan_inf_filter: bool = True
    nonfinite: str = attrs.field(default="stop", validator=_choice(NONFINITE))
    """A nan or inf training loss or gradient norm: ``stop`` training, ``skip`` its step, or ``warn``
    (:mod:`lifecycle.nonfinite`); transformers has no such argument."""
    eval_strategy: str = attrs.field(default="no", converter=_strategy, validator=_choice(INTERVALS))
    eval_steps: float | None = attrs.field(default=None, validator=[_at_least(0, strict=True), steps])
    eval_delay: float = attrs.field(default=0, validator=_at_least(0))
    eval_on_start: bool = False
    save_strategy: str = attrs.field(default="steps", converter=_strategy, validator=_choice(SAVE_STRATEGIES))
    save_steps: float = attrs.field(default=500, validator=[_at_least(0, strict=True), steps])
    save_total_limit: int | None = attrs.field(default=None, validator=_at_least(1))
    load_best_model_at_end: bool = False
    metric_for_best_model: str | None = None
    greater_is_better: bool | None = None
    restore_callback_states_from_checkpoint: bool = True
    seed: int = 42
    data_seed: int | None = None
    report_to: Any = None
    push_to_hub: bool = attrs.field(default=False, validator=_no_push)
    #: read by scripts, not by the trainer (as in transformers): train(), evaluate(), predict() as needed
    do_train: bool = False
    do_eval: bool = False
    do_predict: bool = False
    disable_tqdm: bool = False
    dataloader_num_workers: int = attrs.field(default=0, validator=_at_least(0))
    dataloader_drop_last: bool = False
    dataloader_pin_memory: bool = True
    #: signals that stop a run at the next step boundary with a checkpoint (lifecycle.preemption)
    preemption_signals: list[str] = attrs.field(factory=lambda: ["SIGTERM"], validator=_signals)
    #: Ctrl-C stops at the next step boundary; with this, after writing a checkpoint
    save_on_interrupt: bool = False
    use_cpu: bool = False
    bf16: bool = False
    fp16: bool = False

    # -- the optimizer and its schedule, by name (lifecycle.optimizers, lifecycle.schedules) ---------
    optim: str = attrs.field(default=_default_optim(), converter=_strategy, validator=_choice(OPTIMIZERS))
    optim_args: str | None = None
    lr_scheduler_kwargs: dict[str, Any] | None = attrs.field(default=None, converter=mapping)
    warmup_ratio: float | None = attrs.field(default=None, validator=_at_least(0, high=1))

    # -- the loss ------------------------------------------------------------------------------------
    label_smoothing_factor: float = attrs.field(default=0.0, validator=_at_least(0, below=1))

    # -- the model as trained: activation checkpointing, torch.compile (lifecycle.prepare) -----------
    activation_checkpointing: bool | None = None
    activation_checkpointing_kwargs: dict[str, Any] | None = attrs.field(default=None, converter=mapping)
    gradient_checkpointing: bool | None = None
    """transformers 4's name of ``activation_checkpointing``; either may be given."""
    gradient_checkpointing_kwargs: dict[str, Any] | None = attrs.field(default=None, converter=mapping)
    torch_compile: bool = False
    torch_compile_backend: str | None = None
    torch_compile_mode: str | None = attrs.field(default=None, validator=_choice((*COMPILE_MODES, None)))

    # -- several processes: FSDP2 instead of DDP (lifecycle.fsdp_options, lifecycle.fsdp) ----------
    fsdp: Any = None
    """True (or transformers' strategy words: ``"full_shard"``, ``"shard_grad_op"``, ``"offload"``,
    ``"auto_wrap"``) shards the model with FSDP2; becomes a bool once checked, as in transformers."""
    fsdp_config: Any = None
    """FSDP2's settings: a dict, its JSON text or a JSON file's path
    (:class:`~lifecycle.fsdp_options.FsdpOptions`)."""

    def __new__(cls, *args: Any, **kwargs: Any) -> TrainingArguments:
        check_names(kwargs, attrs.fields_dict(cls))
        return super().__new__(cls)

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
            self.load_best_model_at_end
            or self.save_strategy == "best"
            or self.lr_scheduler_type in METRIC_SCHEDULES
        ) and self.metric_for_best_model is None:
            self.metric_for_best_model = "loss"
        if self.metric_for_best_model is not None and self.greater_is_better is None:
            self.greater_is_better = not self.metric_for_best_model.endswith("loss")
        if self.load_best_model_at_end:
            self._check_best_model_strategies()
        self._settle_optimizer_and_schedule()
        self._settle_model_preparation()
        self.fsdp, self.fsdp_config = settle_fsdp(self.fsdp, self.fsdp_config)
        if self.use_cpu:
            self.dataloader_pin_memory = False

    def _settle_optimizer_and_schedule(self) -> None:
        optimizer_options(self.optim, self.optim_args)
        check_options(self.lr_scheduler_type, self.lr_scheduler_kwargs or {})
        if self.lr_scheduler_type in METRIC_SCHEDULES and self.eval_strategy == "no":
            raise ArgumentError(
                f"TrainingArguments.lr_scheduler_type={self.lr_scheduler_type!r} steps on the evaluation "
                "metric (metric_for_best_model): set eval_strategy"
            )
        ratio, warmup = self.warmup_ratio, self.warmup_steps
        if ratio is not None and warmup != 0 and (warmup >= 1 or warmup != ratio):
            raise ArgumentError(
                f"TrainingArguments: warmup_ratio={ratio} and warmup_steps={warmup} disagree; give one of "
                "them (warmup_steps below 1 is a fraction of max_steps, as warmup_ratio is)"
            )

    def _settle_model_preparation(self) -> None:
        """``gradient_checkpointing*`` and ``activation_checkpointing*`` name the same thing; a compile
        backend or mode turns ``torch_compile`` on (backend ``inductor`` unless given), as in transformers."""
        for old, new in (
            ("gradient_checkpointing", "activation_checkpointing"),
            ("gradient_checkpointing_kwargs", "activation_checkpointing_kwargs"),
        ):
            was, now = getattr(self, old), getattr(self, new)
            if was is not None and now is not None and was != now:
                raise ArgumentError(f"TrainingArguments: {old}={was!r} and {new}={now!r} disagree; give one")
            setattr(self, new, now if now is not None else was)
            setattr(self, old, getattr(self, new))
        if self.activation_checkpointing is None:
            self.activation_checkpointing = self.gradient_checkpointing = False
        if self.torch_compile_backend is not None or self.torch_compile_mode is not None:
            self.torch_compile = True
        if self.torch_compile and self.torch_compile_backend is None:
            self.torch_compile_backend = "inductor"

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
    def fsdp_options(self) -> FsdpOptions | None:
        """FSDP2's checked settings, or None when ``fsdp`` is off."""
        return FsdpOptions.from_config(self.fsdp_config or {}) if self.fsdp else None

    @property
    def train_batch_size(self) -> int:
        return self.per_device_train_batch_size

    @property
    def eval_batch_size(self) -> int:
        return self.per_device_eval_batch_size

    # -- this process among the training processes, read-only as in transformers -------------------
    @property
    def world_size(self) -> int:
        """How many processes train together."""
        return ranks.world_size()

    @property
    def process_index(self) -> int:
        """This process's index among all of them (rank)."""
        return ranks.rank()

    @property
    def local_process_index(self) -> int:
        """This process's index on its machine (local rank)."""
        return ranks.local_rank()

    @property
    def should_log(self) -> bool:
        """Whether this process logs: rank 0 alone (there is no ``log_on_each_node``)."""
        return self.process_index == 0

    @property
    def should_save(self) -> bool:
        """Whether this process writes checkpoints: rank 0 alone (there is no ``save_on_each_node``)."""
        return self.process_index == 0

    def get_warmup_steps(self, num_training_steps: int) -> int:
        """Warmup steps of a run of ``num_training_steps``: ``warmup_ratio`` or ``warmup_steps`` (below 1:
        a fraction), rounded up."""
        fraction = self.warmup_ratio if self.warmup_ratio is not None else self.warmup_steps
        if self.warmup_ratio is None and fraction >= 1:
            return int(fraction)
        return math.ceil(num_training_steps * fraction)

    def to_dict(self) -> dict[str, Any]:
        """Plain values, for trackers and for the checkpoint's record of how the run was set up: a
        tracker class or instance in ``report_to`` is recorded by its name."""
        values = attrs.asdict(self, value_serializer=lambda _i, _a, v: v if _jsonable(v) else repr(v))
        values["report_to"] = _report_names(self.report_to)
        return values

    def to_json_string(self) -> str:
        """:meth:`to_dict` as indented JSON."""
        return json.dumps(self.to_dict(), indent=2)

    def to_sanitized_dict(self) -> dict[str, Any]:
        """:meth:`to_dict` with the batch sizes, every value a bool, int, float or str (others as text):
        what TensorBoard's hyperparameters accept."""
        values = {**self.to_dict(), "train_batch_size": self.train_batch_size}
        values["eval_batch_size"] = self.eval_batch_size
        return {k: v if type(v) in (bool, int, float, str) else str(v) for k, v in values.items()}


def _jsonable(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool, list, tuple, dict))


def _tracker_label(item: Any) -> Any:
    """A tracker class or instance as its ``name`` (its class name where it has none); an enum
    (Accelerate's ``LoggerType``) as its value; a name as it is."""
    if item is None or isinstance(item, str):
        return item
    if isinstance(item, enum.Enum):
        return item.value
    name = getattr(item, "name", None)
    if isinstance(name, str) and name:
        return name
    return item.__name__ if isinstance(item, type) else type(item).__name__


def _report_names(report_to: Any) -> Any:
    """``report_to`` as names only: what a tracker can store and a reader can make sense of."""
    if isinstance(report_to, (list, tuple)):
        return [_tracker_label(item) for item in report_to]
    return _tracker_label(report_to)
