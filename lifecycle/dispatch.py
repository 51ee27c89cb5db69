"""Compile a lifecycle and its callbacks once into a dispatch table, then run it.

``transitions`` evaluates a trigger in 7-12 µs; a training step takes several transitions, so the
trainer runs this table instead: per state, the ordered ``(guard, destination, steps)`` of its exits,
where ``steps`` already holds the flag resets, the effect and every callback handler bound to that
transition. A test walks the table and the equivalent ``transitions.Machine`` side by side.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from lifecycle.callbacks.base import Event
from lifecycle.callbacks.binding import bindings, check_names
from lifecycle.control import RESETS, TrainerControl
from lifecycle.machine import Guard, Lifecycle, LifecycleError, Transition, describe_guard, guard_arity

if TYPE_CHECKING:
    from lifecycle.trace import Tracer

__all__ = ["CallbackError", "Dispatcher", "Runner"]

Step = Callable[[], Any]
#: transitions whose callbacks receive a keyword payload, and its name
PAYLOAD_KEYS = {"log": "logs", "evaluate": "metrics", "predict": "metrics"}


class CallbackError(RuntimeError):
    """A callback raised; the message names the callback, the transition and the step."""


class Runner(Protocol):
    """What the dispatcher drives: the trainer, in practice."""

    state: Any
    control: TrainerControl
    args: Any
    callback_kwargs: dict[str, Any]
    payload: dict[str, Any]


class Edge:
    """One compiled transition: its guard (called with ``(state, control)`` when ``short``, else with
    ``args`` too), its destination, and the steps run when it is taken."""

    __slots__ = ("guard", "label", "name", "short", "steps", "target")

    def __init__(self, t: Transition, target: Node | None, steps: tuple[Step, ...], label: str):
        self.name = t.name
        self.guard, self.short = _normalize(t.guard)
        self.target = target
        self.steps = steps
        self.label = label

    def holds(self, state: Any, control: Any, args: Any) -> bool:
        guard = self.guard
        return guard is None or (guard(state, control) if self.short else guard(state, control, args))


class Node:
    __slots__ = ("action", "edges", "internal", "name", "rest")

    def __init__(self, name: str, action: Step | None, rest: bool):
        self.name = name
        self.action = action
        self.rest = rest
        self.edges: tuple[Edge, ...] = ()
        self.internal: dict[str, Edge] = {}


class Dispatcher:
    """The compiled lifecycle of one runner, with its callbacks bound."""

    def __init__(
        self, lifecycle: Lifecycle, runner: Runner, callbacks: Sequence[object], tracer: Tracer | None = None
    ):
        self.lifecycle = lifecycle
        self.runner = runner
        self.tracer = tracer  # times every step and entry action (lifecycle.trace)
        self.counts: dict[str, int] = dict.fromkeys(lifecycle.transition_names, 0)
        self._labels: dict[Step, str] = {}
        for callback in callbacks:
            check_names(callback, lifecycle.transition_names)
        handlers = {name: self._bind(name, callbacks) for name in lifecycle.transition_names}
        self.nodes = {s.name: Node(s.name, self._action(s.name, s.action), s.rest) for s in lifecycle.states}
        for node in self.nodes.values():
            node.edges = tuple(self._edge(t, handlers[t.name]) for t in lifecycle.outgoing(node.name))
            node.internal = {t.name: self._edge(t, handlers[t.name]) for t in lifecycle.internal(node.name)}
        self.node = self.nodes[lifecycle.initial]

    # -- running -------------------------------------------------------------------------------
    @property
    def current(self) -> str:
        return self.node.name

    def fire(self, name: str) -> None:
        """Take transition ``name`` from the current state, then run until a rest state.

        If anything raises on the way, the machine is back in the state it started from, so the
        runner can be used again (``state.position.lifecycle_state`` still says where it failed).
        """
        runner = self.runner
        for edge in self.node.edges:
            if edge.name == name and edge.holds(runner.state, runner.control, runner.args):
                origin = self.node
                try:
                    self._run(edge)
                except BaseException:
                    self.node = origin
                    raise
                return
        raise LifecycleError(f"no transition {name!r} can be taken from state {self.node.name!r}")

    def emit(self, name: str) -> None:
        """Fire the internal transition ``name`` of the current state (a no-op if not declared)."""
        edge = self.node.internal.get(name)
        if edge is not None:
            self.counts[name] += 1
            self._call(edge)

    def _run(self, edge: Edge) -> None:
        runner = self.runner
        counts = self.counts
        while True:
            counts[edge.name] += 1
            if edge.steps:
                self._call(edge)
            node = edge.target
            assert node is not None
            self.node = node
            state = runner.state
            state.position.lifecycle_state = node.name
            if node.action is not None:
                try:
                    node.action()
                except Exception as exc:
                    action = self.lifecycle.state(node.name).action
                    where = f"{node.name!r} ({type(runner).__name__}.{action})"
                    _note(exc, f"in lifecycle state {where} at global_step {state.global_step}")
                    raise
                state = runner.state
            if node.rest:
                return
            control, args = runner.control, runner.args
            for edge in node.edges:
                guard = edge.guard
                if guard is None or (guard(state, control) if edge.short else guard(state, control, args)):
                    break
            else:
                tried = ", ".join(e.label for e in node.edges)
                raise LifecycleError(f"stuck in state {node.name!r}: no guard holds among {tried}")

    def _call(self, edge: Edge) -> None:
        step = None
        try:
            for step in edge.steps:
                step()
        except CallbackError:
            raise
        except Exception as exc:
            where = self._labels.get(step, "the lifecycle") if step is not None else "the lifecycle"
            raise CallbackError(
                f"{where} raised {type(exc).__name__} on transition {edge.label} "
                f"at global_step {self.runner.state.global_step}: {exc}"
            ) from exc

    # -- compiling -----------------------------------------------------------------------------
    def _action(self, state: str, action: str | None) -> Step | None:
        if action is None:
            return None
        method = getattr(self.runner, action, None)
        if not callable(method):
            raise LifecycleError(
                f"state {state!r}: entry action {action!r} is not a method of {type(self.runner).__name__}"
            )
        return method if self.tracer is None else self.tracer.wrap_action(state, method)

    def _edge(self, t: Transition, handlers: tuple[Step, ...]) -> Edge:
        steps: list[Step] = []
        resets = RESETS.get(t.name, ())
        if resets:
            steps.append(_resetter(self.runner.control, resets))
        if t.effect is not None:
            effect = getattr(self.runner, t.effect, None)
            if not callable(effect):
                raise LifecycleError(
                    f"{t.describe()}: effect {t.effect!r} is not a method of {type(self.runner).__name__}"
                )
            steps.append(effect)
        steps.extend(handlers)
        if self.tracer is not None:
            steps = self._traced(t, steps)
        guard = describe_guard(t.guard)
        label = f"{t.name!r} ({t.source} -> {t.dest or t.source}{' [' + guard + ']' if guard else ''})"
        return Edge(t, None if t.dest is None else self.nodes[t.dest], tuple(steps), label)

    def _traced(self, t: Transition, steps: list[Step]) -> list[Step]:
        assert self.tracer is not None
        shared = sum(o.name == t.name for o in self.lifecycle.transitions) > 1
        wrapped = self.tracer.wrap_edge(t, steps, [self._labels.get(s) for s in steps], shared)
        pairs = zip(wrapped, steps, strict=False)  # a bare counter (no steps) has no label
        self._labels.update((w, self._labels[s]) for w, s in pairs if s in self._labels)
        return list(wrapped)

    def _bind(self, name: str, callbacks: Iterable[object]) -> tuple[Step, ...]:
        """A handler for each method the callbacks bind to transition ``name`` (:func:`bindings`)."""
        bound: list[Step] = []
        for cb in callbacks:
            for attr, sub, label in bindings(cb, name):
                method = getattr(cb, attr)
                if sub is None:
                    step = _hf_handler(method, self.runner, PAYLOAD_KEYS.get(name))
                else:
                    step = _native_handler(method, sub, self.runner, name, self.counts)
                self._labels[step] = f"callback {label}"
                bound.append(step)
        return tuple(bound)

    def handlers(self, name: str) -> list[str]:
        """Labels of the callbacks bound to transition ``name``, in firing order."""
        for node in self.nodes.values():
            for edge in (*node.edges, *node.internal.values()):
                if edge.name == name:
                    return [self._labels[s] for s in edge.steps if s in self._labels]
        return []


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


def _note(exc: BaseException, text: str) -> None:
    """Say where an entry action failed, keeping the exception's type (PEP 678 notes)."""
    if hasattr(exc, "add_note") and text not in getattr(exc, "__notes__", ()):
        exc.add_note(text)


def _resetter(control: TrainerControl, flags: tuple[str, ...]) -> Step:
    def reset() -> None:
        for flag in flags:
            setattr(control, flag, False)

    return reset


def _hf_handler(method: Callable[..., Any], runner: Runner, payload_key: str | None) -> Step:
    control = runner.control

    def adopt(result: Any) -> None:
        if not isinstance(result, TrainerControl):
            raise TypeError(f"returned {type(result).__name__}; return a TrainerControl or None")
        control.update(result)

    if payload_key is None:

        def call() -> None:
            result = method(runner.args, runner.state, control, **runner.callback_kwargs)
            if result is not None and result is not control:
                adopt(result)

    else:

        def call() -> None:
            kwargs = {**runner.callback_kwargs, payload_key: runner.payload.get(payload_key)}
            result = method(runner.args, runner.state, control, **kwargs)
            if result is not None and result is not control:
                adopt(result)

    return call


def _native_handler(
    fn: Callable[[Event], Any], sub: Any, runner: Runner, name: str, counts: dict[str, int]
) -> Step:
    plain = sub.every is None and sub.once is None

    def call() -> None:
        count = counts[name]
        if plain or sub.admits(count):
            fn(Event(runner, name, count, runner.payload))

    return call
