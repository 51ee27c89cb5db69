"""What the compiled lifecycle runs, described once for both ways of running it (table and generated).

One :class:`EdgePlan` per declared transition, in declaration order (its index is its slot in the edge
counts): the flags it clears, its effect, and a :class:`Handler` for each callback method bound to it
(:func:`~lifecycle.callbacks.binding.bindings`), each handler carrying its own label. A plan holds names,
not objects, so it can be made from callback classes (``lifecycle graph --format python``) as well as
from a trainer's instances.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from lifecycle.callbacks.base import Subscription
from lifecycle.callbacks.binding import bindings
from lifecycle.control import RESETS
from lifecycle.machine import Lifecycle, Transition, describe_guard

__all__ = ["PAYLOAD_KEYS", "EdgePlan", "Handler", "edge_label", "plan_edges"]

#: transitions whose Hugging Face style callbacks receive a keyword payload, and its name
PAYLOAD_KEYS = {"log": "logs", "evaluate": "metrics", "predict": "metrics"}


@attrs.frozen
class Handler:
    """One callback method bound to a transition."""

    #: the callback's place in the callback list
    callback: int
    #: the method's attribute name on the callback
    attr: str
    #: its ``@on`` subscription, or None for a Hugging Face style ``on_<transition>`` method
    subscription: Subscription | None
    #: ``Class.method``: how errors and the trace name it
    label: str


@attrs.frozen
class EdgePlan:
    """One transition as run: what it clears, its effect and its handlers, in that order."""

    index: int
    transition: Transition
    resets: tuple[str, ...]
    handlers: tuple[Handler, ...]

    @property
    def name(self) -> str:
        return self.transition.name

    @property
    def key(self) -> str:
        """``name:source->dest``, as the trace and the drawings key an edge."""
        t = self.transition
        return f"{t.name}:{t.source}->{t.dest or ''}"

    @property
    def label(self) -> str:
        """``'step_end' (advance -> boundary)``, as error messages name a transition."""
        return edge_label(self.transition)

    @property
    def payload_key(self) -> str | None:
        return PAYLOAD_KEYS.get(self.transition.name)


def edge_label(t: Transition) -> str:
    guard = describe_guard(t.guard)
    return f"{t.name!r} ({t.source} -> {t.dest or t.source}{' [' + guard + ']' if guard else ''})"


def plan_edges(lifecycle: Lifecycle, callbacks: Sequence[object]) -> tuple[EdgePlan, ...]:
    """Every transition of ``lifecycle`` with the handlers ``callbacks`` (classes or instances) bind."""
    handlers: dict[str, tuple[Handler, ...]] = {}
    for name in lifecycle.transition_names:
        handlers[name] = tuple(
            Handler(i, b.attr, b.subscription, b.label)
            for i, cb in enumerate(callbacks)
            for b in bindings(cb, name)
        )
    return tuple(
        EdgePlan(i, t, RESETS.get(t.name, ()), handlers[t.name]) for i, t in enumerate(lifecycle.transitions)
    )
