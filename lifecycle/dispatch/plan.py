"""What the compiled lifecycle runs, described once for both ways of running it (table and generated).

One :class:`EdgePlan` per declared transition, in declaration order (its index is its slot in the edge
counts): the flags it clears, its effect, and a :class:`Handler` for each callback method bound to it
(:func:`~lifecycle.callbacks.binding.bindings`), each handler carrying its own label. A plan holds names,
not objects, so it can be made from callback classes (``lifecycle graph --format python``) as well as
from a trainer's instances.
"""

from __future__ import annotations

import dis
import inspect
import types
from collections.abc import Callable, Sequence
from typing import Any

import attrs

from lifecycle.callbacks.base import Subscription
from lifecycle.callbacks.binding import Binding, bindings
from lifecycle.control import RESETS, TrainerControl
from lifecycle.machine import Lifecycle, Transition, describe_guard

__all__ = ["PAYLOAD_KEYS", "EdgePlan", "Handler", "adopter", "edge_label", "plan_edges"]

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
    #: whether the generated code passes the callback keyword arguments (``model``, ``optimizer``, ...);
    #: not to a Hugging Face style method that never reads its ``**kwargs`` (:func:`reads_kwargs`)
    kwargs: bool = True
    #: whether it is passed the transition's payload keyword (``logs=``), when the transition has one
    payload: bool = True


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
        key = PAYLOAD_KEYS.get(name)
        handlers[name] = tuple(
            _handler(i, cb, b, key) for i, cb in enumerate(callbacks) for b in bindings(cb, name)
        )
    return tuple(
        EdgePlan(i, t, RESETS.get(t.name, ()), handlers[t.name]) for i, t in enumerate(lifecycle.transitions)
    )


#: names through which a function could see its own ``**kwargs`` without naming them
_INTROSPECTION = frozenset({"locals", "vars", "_getframe", "currentframe", "getframeinfo", "stack"})


def _handler(index: int, callback: object, b: Binding, payload_key: str | None) -> Handler:
    if b.subscription is not None:
        return Handler(index, b.attr, b.subscription, b.label)
    if reads_kwargs(callback, b.attr, payload_key):
        return Handler(index, b.attr, None, b.label, kwargs=True, payload=payload_key is not None)
    named = payload_key is not None and takes_payload(callback, b.attr, payload_key)
    return Handler(index, b.attr, None, b.label, kwargs=False, payload=named)


def reads_kwargs(callback: object, attr: str, payload_key: str | None) -> bool:
    """Whether the Hugging Face style method ``attr`` of ``callback`` may read keyword arguments that
    only its ``**kwargs`` would receive. False only for a plain method ``(self, args, state, control[,
    <payload_key>], **kwargs)`` whose code never loads ``kwargs`` (nor asks for its frame): such a
    method cannot tell whether they were passed, so the generated code calls it without them."""
    klass = callback if isinstance(callback, type) else type(callback)
    if not isinstance(callback, type) and attr in getattr(callback, "__dict__", {}):
        return True  # set on the instance: taken as it is
    fn = getattr(klass, attr, None)
    if not isinstance(fn, types.FunctionType):
        return True
    code = fn.__code__
    flags = code.co_flags
    if not flags & inspect.CO_VARKEYWORDS or flags & inspect.CO_VARARGS or code.co_kwonlyargcount:
        return True
    named = code.co_varnames[: code.co_argcount]
    if len(named) != 4 and not (len(named) == 5 and named[4] == payload_key):
        return True
    var_keyword = code.co_varnames[code.co_argcount]
    if var_keyword in code.co_cellvars or _INTROSPECTION & set(code.co_names):
        return True
    return any(i.argval == var_keyword for i in dis.get_instructions(code) if "FAST" in i.opname)


def takes_payload(callback: object, attr: str, payload_key: str) -> bool:
    """Whether the method names the payload key among its parameters (``logs=None``)."""
    klass = callback if isinstance(callback, type) else type(callback)
    fn = getattr(klass, attr, None)
    code = getattr(fn, "__code__", None)
    return code is not None and payload_key in code.co_varnames[: code.co_argcount]


def adopter(control: TrainerControl) -> Callable[[Any], None]:
    """What a transformers-style handler's result (other than None or ``control`` itself) does: a
    ``TrainerControl``'s flags are taken into ``control``; anything else is an error."""

    def adopt(result: Any) -> None:
        if not isinstance(result, TrainerControl):
            raise TypeError(f"returned {type(result).__name__}; return a TrainerControl or None")
        control.update(result)

    return adopt
