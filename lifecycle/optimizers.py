"""Optimizers by name, as transformers' ``optim``, and the ``optim_args`` each takes ("key=value,...").

Each name is a ``torch.optim`` class with its settings: the Adam family takes ``adam_beta1``,
``adam_beta2`` and ``adam_epsilon``; every one takes ``learning_rate``, and ``weight_decay`` through the
parameter groups (:mod:`lifecycle.optim`). No torch here: the arguments check their ``optim`` and
``optim_args`` before torch is imported.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import attrs

from lifecycle.argcheck import ArgumentError

__all__ = ["OPTIMIZERS", "OptimizerSpec", "optimizer_options", "parse_optim_args"]


def _number(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text!r} is not a finite number")
    return value


def _flag(text: str) -> bool:
    words = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
    if text.lower() not in words:
        raise ValueError(f"{text!r} is not true or false")
    return words[text.lower()]


@attrs.frozen
class OptimizerSpec:
    """A ``torch.optim`` class and what an ``optim`` name sets on it."""

    torch_name: str
    adam: bool = False
    """Takes ``betas=(adam_beta1, adam_beta2)`` and ``eps=adam_epsilon``."""
    fixed: dict[str, Any] = attrs.field(factory=dict)
    options: dict[str, Callable[[str], Any]] = attrs.field(factory=dict)
    """The ``optim_args`` keys it takes, each with the parser of its text."""


OPTIMIZERS: dict[str, OptimizerSpec] = {
    "adamw_torch": OptimizerSpec("AdamW", adam=True, options={"amsgrad": _flag}),
    "adamw_torch_fused": OptimizerSpec("AdamW", adam=True, fixed={"fused": True}, options={"amsgrad": _flag}),
    "adafactor": OptimizerSpec("Adafactor", options={"beta2_decay": _number, "d": _number}),
    "sgd": OptimizerSpec("SGD", options={"momentum": _number, "dampening": _number, "nesterov": _flag}),
    "adagrad": OptimizerSpec(
        "Adagrad", options={"lr_decay": _number, "eps": _number, "initial_accumulator_value": _number}
    ),
    "rmsprop": OptimizerSpec(
        "RMSprop", options={"momentum": _number, "alpha": _number, "eps": _number, "centered": _flag}
    ),
}


def parse_optim_args(text: str | None) -> dict[str, str]:
    """transformers' ``optim_args`` text, ``"key=value,key=value"`` (spaces ignored), as a dict."""
    if not text:
        return {}
    pairs: dict[str, str] = {}
    for item in text.replace(" ", "").split(","):
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise ArgumentError(
                f"TrainingArguments.optim_args: expected 'key=value' pairs separated by commas, got {item!r}"
            )
        pairs[key] = value
    return pairs


def optimizer_options(optim: str, optim_args: str | None) -> dict[str, Any]:
    """The keyword arguments ``optim_args`` gives optimizer ``optim``, parsed; an error names a key it
    does not take or a value it cannot read."""
    spec = OPTIMIZERS[optim]
    accepted = ", ".join(spec.options) or "none"
    options: dict[str, Any] = {}
    for key, text in parse_optim_args(optim_args).items():
        if key not in spec.options:
            hint = " (weight decay is TrainingArguments.weight_decay)" if key == "weight_decay" else ""
            raise ArgumentError(
                f"TrainingArguments.optim_args: {optim!r} takes {accepted}; got unknown {key!r}{hint}"
            )
        try:
            options[key] = spec.options[key](text)
        except ValueError as exc:
            raise ArgumentError(f"TrainingArguments.optim_args: {key}: {exc}") from exc
    return options
