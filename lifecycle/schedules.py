"""Learning-rate schedules by name, as transformers' ``lr_scheduler_type``: each a factor of the initial
learning rate at every optimizer step, with the ``lr_scheduler_kwargs`` it takes.

A *curve* ``(warmup, total, lr, **options) -> factor(step)`` checks its options when it is built; built
with ``lr=None`` (when the arguments are constructed, before any optimizer exists) it checks all that do
not depend on the initial learning rate. ``reduce_lr_on_plateau`` and ``greedy`` have no curve: they step
on the evaluation metric (:mod:`lifecycle.optim` builds them). No torch here.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Any

import attrs

from lifecycle.argcheck import ArgumentError

__all__ = ["SCHEDULES", "Schedule", "check_options"]

Factor = Callable[[int], float]
Curve = Callable[..., Factor]
SHAPES = ("linear", "cosine", "1-sqrt")


def _error(name: str, what: str) -> ArgumentError:
    return ArgumentError(f"TrainingArguments.lr_scheduler_kwargs: {name!r} {what}")


def _ramp(step: int, warmup: int) -> float:
    return step / max(1, warmup)


def _cosine(progress: float, cycles: float, floor: float = 0.0) -> float:
    """The cosine decay ``progress`` (0 to 1) of the way through ``cycles`` waves, between 1 and ``floor``."""
    wave = 0.5 * (1.0 + math.cos(math.pi * float(cycles) * 2.0 * progress))
    return max(0.0, wave * (1.0 - floor) + floor)


def _min_rate(name: str, lr: float | None, min_lr: float | None, min_lr_rate: float | None) -> float:
    """The floor of a ``*_with_min_lr`` schedule as a fraction of the initial learning rate."""
    if (min_lr is None) == (min_lr_rate is None):
        raise _error(name, "needs exactly one of min_lr and min_lr_rate")
    if min_lr_rate is not None:
        return min_lr_rate
    assert min_lr is not None
    return min_lr / lr if lr else 0.0


def constant(warmup: int, total: int, lr: float | None) -> Factor:
    return lambda step: 1.0  # no warmup, as in transformers


def constant_with_warmup(warmup: int, total: int, lr: float | None) -> Factor:
    return lambda step: _ramp(step, warmup) if step < warmup else 1.0


def linear(warmup: int, total: int, lr: float | None) -> Factor:
    def factor(step: int) -> float:
        if step < warmup:
            return _ramp(step, warmup)
        return max(0.0, (total - step) / max(1, total - warmup))

    return factor


def cosine(warmup: int, total: int, lr: float | None, *, num_cycles: float = 0.5) -> Factor:
    def factor(step: int) -> float:
        if step < warmup:
            return _ramp(step, warmup)
        return _cosine((step - warmup) / max(1, total - warmup), num_cycles)

    return factor


def cosine_with_restarts(warmup: int, total: int, lr: float | None, *, num_cycles: int = 1) -> Factor:
    def factor(step: int) -> float:
        if step < warmup:
            return _ramp(step, warmup)
        progress = (step - warmup) / max(1, total - warmup)
        if progress >= 1.0:
            return 0.0
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * ((float(num_cycles) * progress) % 1.0))))

    return factor


def polynomial(
    warmup: int, total: int, lr: float | None, *, lr_end: float = 1e-7, power: float = 1.0
) -> Factor:
    if lr is not None and not lr > lr_end:
        raise _error("polynomial", f"needs lr_end ({lr_end}) below the initial learning rate ({lr})")
    end = lr_end / lr if lr else 0.0

    def factor(step: int) -> float:
        if step < warmup:
            return _ramp(step, warmup)
        if step > total:
            return end
        remaining = 1 - (step - warmup) / max(1, total - warmup)
        return (1.0 - end) * remaining**power + end

    return factor


def inverse_sqrt(warmup: int, total: int, lr: float | None, *, timescale: int | None = None) -> Factor:
    if timescale is not None and timescale <= 0:
        raise _error("inverse_sqrt", f"needs timescale > 0, got {timescale}")
    scale = timescale if timescale is not None else (warmup or 10_000)

    def factor(step: int) -> float:
        if step < warmup:
            return _ramp(step, warmup)
        return 1.0 / math.sqrt((step + scale - warmup) / scale)

    return factor


def cosine_with_min_lr(
    warmup: int,
    total: int,
    lr: float | None,
    *,
    num_cycles: float = 0.5,
    min_lr: float | None = None,
    min_lr_rate: float | None = None,
) -> Factor:
    floor = _min_rate("cosine_with_min_lr", lr, min_lr, min_lr_rate)

    def factor(step: int) -> float:
        if step < warmup:
            return _ramp(step, warmup)
        return _cosine((step - warmup) / max(1, total - warmup), num_cycles, floor)

    return factor


def cosine_warmup_with_min_lr(
    warmup: int,
    total: int,
    lr: float | None,
    *,
    num_cycles: float = 0.5,
    min_lr: float | None = None,
    min_lr_rate: float | None = None,
    warmup_lr_rate: float | None = None,
) -> Factor:
    """As ``cosine_with_min_lr``, but the warmup's first step is already above 0 (``warmup_lr_rate``,
    default ``1 / warmup``) and the decay starts one step earlier."""
    floor = _min_rate("cosine_warmup_with_min_lr", lr, min_lr, min_lr_rate)

    def factor(step: int) -> float:
        if step < warmup:
            if warmup_lr_rate is None:
                return (step + 1.0) / max(1, warmup)
            return warmup_lr_rate + (1.0 - warmup_lr_rate) * step / max(1, warmup - 1)
        return _cosine((step - warmup + 1.0) / max(1, total - warmup), num_cycles, floor)

    return factor


def _shape(kind: str, progress: float, cycles: float, rising: bool) -> float:
    if kind == "linear":
        return progress if rising else 1.0 - progress
    if kind == "cosine":
        return 0.5 * (1.0 - math.cos(math.pi * progress)) if rising else _cosine(progress, cycles)
    return 1.0 - math.sqrt(1.0 - progress) if rising else 1.0 - math.sqrt(progress)


def warmup_stable_decay(
    warmup: int,
    total: int,
    lr: float | None,
    *,
    num_decay_steps: int,
    num_stable_steps: int | None = None,
    warmup_type: str = "linear",
    decay_type: str = "cosine",
    min_lr_ratio: float = 0.0,
    num_cycles: float = 0.5,
) -> Factor:
    """Warm up to 1, hold, then decay over ``num_decay_steps`` to ``min_lr_ratio`` (and stay there)."""
    for key, kind in (("warmup_type", warmup_type), ("decay_type", decay_type)):
        if kind not in SHAPES:
            raise _error("warmup_stable_decay", f"needs {key} in {', '.join(SHAPES)}, got {kind!r}")
    stable = num_stable_steps if num_stable_steps is not None else total - warmup - num_decay_steps
    floor = min_lr_ratio

    def factor(step: int) -> float:
        if step < warmup:
            rise = _shape(warmup_type, step / max(1, warmup), num_cycles, rising=True)
            return max(0.0, rise * (1.0 - floor) + floor)
        if step < warmup + stable:
            return 1.0
        if step < warmup + stable + num_decay_steps:
            progress = (step - warmup - stable) / max(1, num_decay_steps)
            return max(0.0, _shape(decay_type, progress, num_cycles, rising=False) * (1.0 - floor) + floor)
        return floor

    return factor


@attrs.frozen
class Schedule:
    """A schedule name: its curve (``None``: it steps on the evaluation metric) and the options it takes."""

    curve: Curve | None
    options: tuple[str, ...]
    required: tuple[str, ...] = ()
    numbers: tuple[str, ...] = ()
    """The options that are numbers (a curve's others are names)."""

    @classmethod
    def of(cls, curve: Curve) -> Schedule:
        params = [p for p in inspect.signature(curve).parameters.values() if p.kind is p.KEYWORD_ONLY]
        required = tuple(p.name for p in params if p.default is p.empty)
        numbers = tuple(p.name for p in params if "str" not in str(p.annotation))
        return cls(curve, tuple(p.name for p in params), required, numbers)


#: ``torch.optim.lr_scheduler.ReduceLROnPlateau``'s options (a test keeps the list in step with torch)
PLATEAU_OPTIONS = ("mode", "factor", "patience", "threshold", "threshold_mode", "cooldown", "min_lr", "eps")
#: :class:`lifecycle.greedy.GreedyLR`'s options
GREEDY_OPTIONS = (
    *("mode", "factor", "patience", "threshold", "threshold_mode", "cooldown", "warmup"),
    *("min_lr", "max_lr", "eps", "verbose", "smooth", "window_size", "reset_start"),
)

SCHEDULES: dict[str, Schedule] = {
    "linear": Schedule.of(linear),
    "cosine": Schedule.of(cosine),
    "cosine_with_restarts": Schedule.of(cosine_with_restarts),
    "polynomial": Schedule.of(polynomial),
    "constant": Schedule.of(constant),
    "constant_with_warmup": Schedule.of(constant_with_warmup),
    "inverse_sqrt": Schedule.of(inverse_sqrt),
    "reduce_lr_on_plateau": Schedule(None, PLATEAU_OPTIONS),
    "cosine_with_min_lr": Schedule.of(cosine_with_min_lr),
    "cosine_warmup_with_min_lr": Schedule.of(cosine_warmup_with_min_lr),
    "warmup_stable_decay": Schedule.of(warmup_stable_decay),
    "greedy": Schedule(None, GREEDY_OPTIONS),
}


def check_options(name: str, options: dict[str, Any]) -> None:
    """``lr_scheduler_kwargs`` for schedule ``name``: known keys, the required ones present, numbers
    finite, and what the curve can check without a learning rate."""
    schedule = SCHEDULES[name]
    accepted = ", ".join(schedule.options) or "no options"
    unknown = sorted(set(options) - set(schedule.options))
    if unknown:
        raise _error(name, f"takes {accepted}; got unknown {', '.join(map(repr, unknown))}")
    missing = [key for key in schedule.required if key not in options]
    if missing:
        raise _error(name, f"needs {', '.join(missing)}")
    for key in schedule.numbers:
        value = options.get(key)
        if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool)):
            raise _error(name, f"needs {key} to be a number, got {value!r}")
        if value is not None and not math.isfinite(value):
            raise _error(name, f"needs a finite {key}, got {value!r}")
    if schedule.curve is not None:
        schedule.curve(0, 1, None, **options)
