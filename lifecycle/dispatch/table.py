"""The reference way to run a compiled lifecycle: a table of nodes and edges, walked by a loop.

Per state, the ordered ``(guard, destination, steps)`` of its exits, where ``steps`` holds the flag
resets, the effect and a closure for every handler bound to the transition, each step carrying the
:class:`~lifecycle.dispatch.errors.Site` errors name it by. Slower than the generated code
(:mod:`lifecycle.dispatch.codegen`) and simpler to read; the differential tests run both.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from lifecycle.callbacks.base import Event
from lifecycle.control import TrainerControl
from lifecycle.dispatch.codegen import EMPTY
from lifecycle.dispatch.errors import Site, failure
from lifecycle.dispatch.plan import EdgePlan, Handler, adopter
from lifecycle.machine import Guard, Lifecycle, LifecycleError, describe_guard, guard_arity

if TYPE_CHECKING:
    from lifecycle.dispatch.counts import Counts
    from lifecycle.trace import Tracer

__all__ = ["Table"]

Payload = Any


class Step:
    """One call a transition makes, and how errors name it."""

    __slots__ = ("call", "site")

    def __init__(self, call: Callable[[Payload], Any], site: Site | None):
        self.call = call
        self.site = site


class Edge:
    """One compiled transition: its guard (called with ``(state, control)`` when ``short``, else with
    ``args`` too), its destination, and the steps run when it is taken."""

    __slots__ = ("guard", "guard_site", "index", "label", "name", "short", "steps", "target")

    def __init__(self, plan: EdgePlan, target: Node | None, steps: tuple[Step, ...]):
        self.name = plan.name
        self.index = plan.index
        self.guard, self.short = _normalize(plan.transition.guard)
        self.target = target
        self.steps = steps
        self.label = plan.label
        self.guard_site = Site("guard", describe_guard(plan.transition.guard), plan.label)

    def holds(self, state: Any, control: Any, args: Any) -> bool:
        guard = self.guard
        return guard is None or (guard(state, control) if self.short else guard(state, control, args))


class Node:
    __slots__ = ("action", "edges", "internal", "name", "rest", "site")

    def __init__(self, name: str, action: Callable[[], Any] | None, site: Site | None, rest: bool):
        self.name = name
        self.action = action
        self.site = site
        self.rest = rest
        self.edges: tuple[Edge, ...] = ()
        self.internal: dict[str, Edge] = {}


class Table:
    """The lifecycle's nodes and edges with their steps bound; :meth:`run` walks them."""

    def __init__(
        self,
        lifecycle: Lifecycle,
        plans: Sequence[EdgePlan],
        runner: Any,
        callbacks: Sequence[object],
        counts: Counts,
        tracer: Tracer | None,
    ):
        self.runner = runner
        self.counts = counts
        self.tracer = tracer
        self.callbacks = callbacks
        self.nodes = {s.name: self._node(s.name, s.action, s.rest) for s in lifecycle.states}
        for node in self.nodes.values():
            node.edges = tuple(
                self._edge(p) for p in plans if p.transition.source == node.name and p.transition.dest
            )
            node.internal = {
                p.name: self._edge(p)
                for p in plans
                if p.transition.source == node.name and p.transition.internal
            }
        self.edges = {
            e.index: e for node in self.nodes.values() for e in (*node.edges, *node.internal.values())
        }
        self.emits = {
            (node.name, name): self._emitter(edge)
            for node in self.nodes.values()
            for name, edge in node.internal.items()
        }

    # -- running -------------------------------------------------------------------------------
    def run(self, index: int, payload: Payload) -> str:
        """Take edge ``index``, then walk the table until a rest state; return it."""
        runner, edges = self.runner, self.counts.edges
        edge = self.edges[index]
        while True:
            edges[edge.index] += 1
            self._call(edge, payload)
            node = edge.target
            assert node is not None
            state = runner.state
            state.position.lifecycle_state = node.name
            payload = EMPTY
            if node.action is not None:
                try:
                    payload = node.action() or EMPTY
                except BaseException as exc:
                    error = failure(exc, node.site, runner)
                    if error is None:
                        raise
                    raise error from exc
                state = runner.state
            if node.rest:
                return node.name
            control, args = runner.control, runner.args
            for edge in node.edges:
                try:
                    if edge.holds(state, control, args):
                        break
                except BaseException as exc:
                    failure(exc, edge.guard_site, runner)  # a note naming the guard
                    raise
            else:
                tried = ", ".join(e.label for e in node.edges)
                raise LifecycleError(f"stuck in state {node.name!r}: no guard holds among {tried}")

    def _emitter(self, edge: Edge) -> Callable[[Payload], None]:
        def emit(payload: Payload) -> None:
            self.counts.edges[edge.index] += 1
            self._call(edge, payload)

        return emit

    def _call(self, edge: Edge, payload: Payload) -> None:
        for step in edge.steps:
            try:
                step.call(payload)
            except BaseException as exc:
                error = failure(exc, step.site, self.runner)
                if error is None:
                    raise
                raise error from exc

    # -- compiling -----------------------------------------------------------------------------
    def _node(self, state: str, action: str | None, rest: bool) -> Node:
        if action is None:
            return Node(state, None, None, rest)
        method = getattr(self.runner, action, None)
        if not callable(method):
            raise LifecycleError(
                f"state {state!r}: entry action {action!r} is not a method of {type(self.runner).__name__}"
            )
        if self.tracer is not None:
            method = self.tracer.timed(method, self.tracer.slot("", state, action, "action"))
        return Node(state, method, Site("action", action, state), rest)

    def _edge(self, plan: EdgePlan) -> Edge:
        t, steps = plan.transition, []
        if plan.resets:
            steps.append(Step(_resetter(self.runner.control, plan.resets), None))
        if t.effect is not None:
            effect = getattr(self.runner, t.effect, None)
            if not callable(effect):
                raise LifecycleError(
                    f"{t.describe()}: effect {t.effect!r} is not a method of {type(self.runner).__name__}"
                )
            call = self._timed(_ignoring_payload(effect), plan, t.effect, "effect")
            steps.append(Step(call, Site("effect", f"effect {t.effect}", plan.label)))
        for h in plan.handlers:
            call = self._timed(self._handler(plan, h), plan, h.label, "callback")
            steps.append(Step(call, Site("callback", f"callback {h.label}", plan.label)))
        return Edge(plan, None if t.dest is None else self.nodes[t.dest], tuple(steps))

    def _timed(
        self, call: Callable[[Payload], Any], plan: EdgePlan, label: str, kind: str
    ) -> Callable[[Payload], Any]:
        if self.tracer is None:
            return call
        return self.tracer.timed(call, self.tracer.slot(plan.name, plan.key, label, kind))

    def _handler(self, plan: EdgePlan, h: Handler) -> Callable[[Payload], Any]:
        method = getattr(self.callbacks[h.callback], h.attr)
        runner = self.runner
        if h.subscription is None:
            return _hf_handler(method, runner, plan.payload_key)
        return _native_handler(method, h, runner, plan.name, self.counts)


def _normalize(guard: Guard) -> tuple[Callable[..., bool] | None, bool]:
    """The guard as a callable, and whether it takes the short ``(state, control)`` form."""
    if guard is None:
        return None, True
    if isinstance(guard, str):
        flag = guard

        def flag_guard(s: Any, c: Any) -> bool:
            return bool(getattr(c, flag))

        return flag_guard, True
    return guard, guard_arity(guard) == 2


def _ignoring_payload(effect: Callable[[], Any]) -> Callable[[Payload], Any]:
    def call(payload: Payload) -> Any:
        return effect()

    return call


def _resetter(control: TrainerControl, flags: tuple[str, ...]) -> Callable[[Payload], None]:
    def reset(payload: Payload) -> None:
        for flag in flags:
            setattr(control, flag, False)

    return reset


def _hf_handler(
    method: Callable[..., Any], runner: Any, payload_key: str | None
) -> Callable[[Payload], None]:
    control = runner.control
    adopt = adopter(control)

    def call(payload: Payload) -> None:
        kwargs = runner.callback_kwargs
        if payload_key is not None:
            kwargs = {**kwargs, payload_key: payload.get(payload_key)}
        result = method(runner.args, runner.state, control, **kwargs)
        if result is not None and result is not control:
            adopt(result)

    return call


def _native_handler(
    fn: Callable[[Event], Any], h: Handler, runner: Any, name: str, counts: Counts
) -> Callable[[Payload], None]:
    sub = h.subscription
    assert sub is not None

    def call(payload: Payload) -> None:
        count = counts[name]
        if sub.admits(count):
            fn(Event(runner, name, count, payload))

    return call
