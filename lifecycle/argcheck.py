"""Checks for TrainingArguments fields, one small attrs validator per kind of value.

:func:`typed` gives every field the check its annotation implies (``int``, ``float``, ``bool``, ``str``,
``dict``, each optional with ``| None``); ranges and choices are added per field. Every message starts
with ``TrainingArguments.<field>:`` and says what the field accepts and what it got.
"""

from __future__ import annotations

import difflib
import json
import math
import numbers
import os
from collections.abc import Callable, Iterable
from typing import Any

import attrs

__all__ = ["ArgumentError", "at_least", "choice", "mapping", "path", "steps", "strategy", "typed"]

Validator = Callable[[Any, "attrs.Attribute[Any]", Any], None]


class ArgumentError(ValueError):
    """A TrainingArguments value that cannot work; the message names the field."""


def fail(name: str, what: str, value: Any) -> ArgumentError:
    return ArgumentError(f"TrainingArguments.{name}: {what}, got {value!r}")


def _is(kind: str, value: Any) -> bool:
    if kind == "bool":
        return isinstance(value, bool)
    if isinstance(value, bool):  # True is an int to Python, never a number here
        return False
    if kind == "int":
        return isinstance(value, numbers.Integral)
    if kind == "float":
        return isinstance(value, numbers.Real) and math.isfinite(value)
    if kind == "str":
        return isinstance(value, str)
    return isinstance(value, dict) and all(isinstance(k, str) for k in value)


_WHAT = {
    "bool": "must be True or False",
    "int": "must be an integer",
    "float": "must be a finite number",
    "str": "must be a string",
    "dict": "must be a dict of keyword arguments (or its JSON text)",
}


def _kind_check(annotation: str) -> Validator | None:
    kind = next((k for k in _WHAT if annotation.startswith(k)), None)
    if kind is None:
        return None
    optional = annotation.endswith("| None")

    def check(inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if not (_is(kind, value) or (optional and value is None)):
            raise fail(attribute.name, _WHAT[kind] + (" or None" if optional else ""), value)

    return check


def typed(cls: type, fields: list[attrs.Attribute[Any]]) -> list[attrs.Attribute[Any]]:
    """attrs field transformer: each field checked by its annotation first, then by its own validator."""
    checked = []
    for field in fields:
        check = _kind_check(str(field.type))
        if check is not None:
            validator = check if field.validator is None else attrs.validators.and_(check, field.validator)
            field = field.evolve(validator=validator)
        checked.append(field)
    return checked


def at_least(
    low: float, *, strict: bool = False, high: float | None = None, below: float | None = None
) -> Validator:
    """A number ``>= low`` (``strict``: ``> low``), at most ``high``, less than ``below``; None passes."""

    def check(inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is None:
            return
        if (value <= low) if strict else (value < low):
            raise fail(attribute.name, f"must be {'>' if strict else '>='} {low}", value)
        if high is not None and value > high:
            raise fail(attribute.name, f"must be <= {high}", value)
        if below is not None and value >= below:
            raise fail(attribute.name, f"must be < {below}", value)

    return check


def steps(inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    """A number of steps: whole when ``>= 1``, below 1 a fraction of ``max_steps``."""
    if value is not None and value >= 1 and value != int(value):
        raise fail(attribute.name, "must be a whole number of steps when >= 1 (below 1, a fraction)", value)


def choice(allowed: Iterable[str | None]) -> Validator:
    """One of ``allowed``."""
    names = tuple(allowed)

    def check(inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value not in names:
            close = difflib.get_close_matches(str(value), [n for n in names if n is not None], n=1)
            error = fail(attribute.name, f"must be one of {', '.join(map(repr, names))}", value)
            raise ArgumentError(f"{error}; did you mean {close[0]!r}?") if close else error

    return check


def mapping(value: Any) -> Any:
    """Converter: a JSON object's text (from a command line) becomes a dict; anything else stays."""
    if isinstance(value, str) and value.lstrip().startswith("{"):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value  # the field's check names it
    return value


def path(value: Any) -> Any:
    """Converter: a path object becomes its text; anything else stays (for the field's check)."""
    return os.fspath(value) if isinstance(value, os.PathLike) else value


def strategy(value: Any) -> Any:
    """Converter: accept Hugging Face's enum members as well as plain strings."""
    return getattr(value, "value", value)
