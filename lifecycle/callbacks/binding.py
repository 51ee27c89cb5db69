"""Which methods of a callback a transition binds, in firing order: one rule for the trainer and the drawing.

An ``on_<transition>`` method comes first, unless it is :class:`TrainerCallback`'s own no-op; then the
callback's ``@on(transition)`` methods, in the order they were defined (:func:`subscriptions`). The
rule reads only the class (and an instance's own attributes, when given one), so a callback class can
be listed on a drawing without being instantiated.
"""

from __future__ import annotations

from typing import NamedTuple

from lifecycle.callbacks.base import Subscription, TrainerCallback, subscriptions

__all__ = ["Binding", "bindings"]


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
