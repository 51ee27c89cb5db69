"""What trackers receive: metric names as Hugging Face writes them, values as plain numbers or text."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from typing import Any

__all__ = ["Loggable", "loggable", "rewrite_names", "run_config", "scalar_config", "wants_scalars"]

logger = logging.getLogger("lifecycle.integrations")

Loggable = int | float | str

_PREFIXES = (("eval_", "eval/"), ("test_", "test/"))


def rewrite_names(values: Mapping[str, Any]) -> dict[str, Any]:
    """``eval_loss`` -> ``eval/loss``, ``test_acc`` -> ``test/acc``, anything else -> ``train/<name>``."""
    renamed: dict[str, Any] = {}
    for key, value in values.items():
        for prefix, group in _PREFIXES:
            if key.startswith(prefix):
                renamed[group + key[len(prefix) :]] = value
                break
        else:
            renamed["train/" + key] = value
    return renamed


def _scalar(value: Any) -> Loggable | None:
    """``value`` as an int, float or str; None where it is none of those (nor a one-element tensor/array)."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float, str)):
        return value
    shape = getattr(value, "shape", None)
    if shape is not None and hasattr(value, "item") and math.prod(shape) == 1:
        item = value.item()  # a torch tensor, a numpy array or scalar holding one number
        return _scalar(item) if isinstance(item, (bool, int, float)) else None
    return None


def loggable(logs: Mapping[str, Any], warned: set[str]) -> dict[str, Loggable]:
    """The loggable part of ``logs``; each key dropped for the first time is named in one warning."""
    kept: dict[str, Loggable] = {}
    for key, value in logs.items():
        scalar = _scalar(value)
        if scalar is not None:
            kept[key] = scalar
        elif key not in warned:
            warned.add(key)
            logger.warning(
                "trackers skip %r: a %s is neither a number nor text (its later values are skipped too)",
                key,
                type(value).__name__,
            )
    return kept


def run_config(args: Any, model: Any = None) -> dict[str, Any]:
    """The configuration a run reports once: the model's config (if it has one) under the arguments.

    Values are made plain JSON (tuples become lists, other objects their ``repr``), so that every
    tracker can store them: ``report_to`` may hold tracker classes and instances, for one.
    """
    config: dict[str, Any] = {}
    model_config = getattr(model, "config", None)
    if model_config is not None and hasattr(model_config, "to_dict"):
        config.update(model_config.to_dict())
    config.update(args.to_dict())
    config["run_name"] = args.run_name
    plain: dict[str, Any] = json.loads(json.dumps(config, default=repr))
    return plain


def scalar_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` with every value a bool, int, float, str or None, as Accelerate promises its trackers
    (TensorBoard's hyperparameters refuse anything else): lists and dicts become their JSON text."""
    return {
        key: value if value is None or isinstance(value, (bool, int, float, str)) else json.dumps(value)
        for key, value in config.items()
    }


def wants_scalars(tracker: Any) -> bool:
    """Whether ``tracker`` is one of Accelerate's (a subclass of ``accelerate.tracking.GeneralTracker``),
    told by its classes' names so that Accelerate need not be imported."""
    return any(
        (klass.__module__, klass.__qualname__) == ("accelerate.tracking", "GeneralTracker")
        for klass in type(tracker).__mro__
    )
