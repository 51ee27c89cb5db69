"""Which methods of a callback a transition binds, in firing order: one rule for the trainer and the drawing.

An ``on_<transition>`` method comes first, unless it is :class:`TrainerCallback`'s own no-op; then the
callback's ``@on(transition)`` methods, in the order they were defined (:func:`subscriptions`). The
rule reads only the class (and an instance's own attributes, when given one), so a callback class can
be listed on a drawing without being instantiated.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection
from typing import NamedTuple

from lifecycle.callbacks.base import Subscription, TrainerCallback, subscriptions
from lifecycle.machine import LifecycleError

__all__ = ["Binding", "bindings", "check_names"]

#: transformers' events this lifecycle never fires (it pushes nothing to the Hub)
NEVER_FIRED = frozenset({"push_begin"})


class Binding(NamedTuple):
    """One method bound to a transition."""

    #: the method's attribute name on the callback
    attr: str
    #: its ``@on`` subscription, or None for a Hugging Face style ``on_<transition>`` method
    subscription: Subscription | None
    #: ``Class.method``, as the trace and the drawings name it
    label: str


def bindings(callback: object, transition: str) -> list[Binding]:
    """What ``callback`` (a class or an instance) binds to ``transition``, in firing order."""
    klass = callback if isinstance(callback, type) else type(callback)
    found: list[Binding] = []
    hf = f"on_{transition}"
    if callable(getattr(callback, hf, None)) and getattr(klass, hf, None) is not getattr(
        TrainerCallback, hf, None
    ):
        found.append(Binding(hf, None, f"{klass.__name__}.{hf}"))
    found += [
        Binding(attr, sub, f"{klass.__name__}.{attr}")
        for attr, sub in subscriptions(klass)
        if sub.transition == transition
    ]
    return found


def _declared_handlers(klass: type) -> list[str]:
    """``on_*`` methods the callback's own classes define (the base classes' no-ops left out)."""
    names: list[str] = []
    for cls in klass.__mro__:
        if cls is object or cls is TrainerCallback or cls.__module__.startswith("transformers."):
            continue
        names += [n for n, v in vars(cls).items() if n.startswith("on_") and callable(v) and n not in names]
    return names


def check_names(callback: object, transitions: Collection[str]) -> None:
    """Refuse a callback with an ``on_<name>`` method or ``@on(name)`` that names no transition
    (a misspelt one would never fire); the message names the closest transition."""
    klass = callback if isinstance(callback, type) else type(callback)
    asked = [(f"method {attr}", attr.removeprefix("on_")) for attr in _declared_handlers(klass)]
    asked += [(f"@on({sub.transition!r}) on {attr}", sub.transition) for attr, sub in subscriptions(klass)]
    for what, name in asked:
        if name in transitions or name in NEVER_FIRED:
            continue
        close = difflib.get_close_matches(name, list(transitions), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f"; transitions are {', '.join(transitions)}"
        raise LifecycleError(f"callback {klass.__name__}: {what} names no transition {name!r}{hint}")
