"""Compile a lifecycle and its callbacks once, then run it: as generated Python source, or as a table.

``transitions`` evaluates a trigger in 7-12 µs; a training step takes several transitions, so the
trainer runs the declaration compiled. Two ways, selected by ``mode``:

* ``"generated"`` (the default): Python source written for this lifecycle and these callbacks, with
  guards, flag resets and handler calls inline (:mod:`lifecycle.dispatch.codegen`);
  :attr:`Dispatcher.source` holds it, ``lifecycle graph --format python`` prints it;
* ``"table"``: the reference, a table of nodes and edges walked by a loop (:mod:`lifecycle.dispatch.table`).

Both run the same :mod:`~lifecycle.dispatch.plan`, count into the same
:class:`~lifecycle.dispatch.counts.Counts` and time into the same :class:`~lifecycle.trace.Tracer`; a
test walks each against the equivalent ``transitions.Machine``, and the parity tests with transformers
run on both. ``Trainer(dispatch="table")`` picks the reference.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol

from lifecycle.callbacks.binding import check_names
from lifecycle.control import TrainerControl
from lifecycle.dispatch import codegen
from lifecycle.dispatch.counts import Counts
from lifecycle.dispatch.errors import CallbackError
from lifecycle.dispatch.plan import PAYLOAD_KEYS, EdgePlan, plan_edges
from lifecycle.dispatch.table import Node, Table
from lifecycle.machine import Lifecycle, LifecycleError

if TYPE_CHECKING:
    from lifecycle.trace import Tracer

__all__ = [
    "MODES",
    "PAYLOAD_KEYS",
    "CallbackError",
    "Counts",
    "DispatchMode",
    "Dispatcher",
    "Runner",
    "Standing",
    "python_source",
]

DispatchMode = Literal["generated", "table"]
MODES: tuple[str, ...] = ("generated", "table")


class Runner(Protocol):
    """What the dispatcher drives: the trainer, in practice. Its entry actions may return the payload
    of the transition that leaves their state (``{"logs": ...}``, ``{"metrics": ...}``)."""

    state: Any
    control: TrainerControl
    args: Any
    callback_kwargs: dict[str, Any]


def python_source(
    lifecycle: Lifecycle, callbacks: Sequence[object] = (), tracer: Tracer | None = None
) -> str:
    """The source the generated dispatcher runs for ``lifecycle`` and ``callbacks`` (classes or
    instances), timing with ``tracer``'s slots (a trainer's: a fresh :class:`~lifecycle.Tracer`)."""
    return _program(lifecycle, plan_edges(lifecycle, callbacks), callbacks, tracer).source


def _program(
    lifecycle: Lifecycle, plans: Sequence[EdgePlan], callbacks: Sequence[object], tracer: Tracer | None
) -> codegen.Program:
    names = [(cb if isinstance(cb, type) else type(cb)).__name__ for cb in callbacks]
    return codegen.generate(lifecycle, plans, names, tracer.slot if tracer is not None else None)


class Standing:
    """Where the machine stands: the state it rests in, and whether it runs. Shared by a dispatcher and
    the one that replaces it when the callbacks change, even mid-run."""

    __slots__ = ("rest", "running")

    def __init__(self, rest: str):
        self.rest = rest
        self.running = False


class Dispatcher:
    """The compiled lifecycle of one runner, with its callbacks bound.

    :attr:`counts` counts each transition (it may be handed on from the dispatcher this one replaces);
    ``tracer`` times each callback, effect and entry action.
    """

    def __init__(
        self,
        lifecycle: Lifecycle,
        runner: Runner,
        callbacks: Sequence[object],
        tracer: Tracer | None = None,
        *,
        mode: DispatchMode = "generated",
        counts: Counts | None = None,
        standing: Standing | None = None,
    ):
        if mode not in MODES:
            raise ValueError(f"dispatch mode {mode!r}: expected one of {', '.join(MODES)}")
        self.lifecycle = lifecycle
        self.runner = runner
        self.tracer = tracer
        self.mode = mode
        for callback in callbacks:
            check_names(callback, lifecycle.transition_names)
        self.counts = counts if counts is not None else Counts(lifecycle)
        self.plans = plan_edges(lifecycle, callbacks)
        program = _program(lifecycle, self.plans, callbacks, tracer) if mode == "generated" else None
        #: the nodes and edges (the reference table; the generated mode uses it to choose a fired edge)
        self.table = Table(lifecycle, self.plans, runner, callbacks, self.counts, tracer)
        self.nodes: dict[str, Node] = self.table.nodes
        #: the generated source (empty in the table mode)
        self.source = ""
        self._run: Callable[[int, Any], str] = self.table.run
        self._emits: dict[tuple[str, str], Callable[[Any], None]] = self.table.emits
        if program is not None:
            functions = codegen.load(program, runner, callbacks, self.counts, tracer)
            self.source = program.source
            self._run = functions["run"]
            self._emits = {key: functions[name] for key, name in program.emits.items()}
        self.standing = standing if standing is not None else Standing(lifecycle.initial)

    # -- where the machine stands ------------------------------------------------------------------
    @property
    def node(self) -> Node:
        """The state the machine stands in: the one it rests in, or while it runs, the one it entered."""
        standing = self.standing
        if standing.running:
            return self.nodes.get(self.runner.state.position.lifecycle_state, self.nodes[standing.rest])
        return self.nodes[standing.rest]

    @property
    def current(self) -> str:
        return self.node.name

    # -- running -------------------------------------------------------------------------------
    def fire(self, name: str, **payload: Any) -> None:
        """Take transition ``name`` from the state the machine rests in, then run until it rests again;
        ``payload`` goes to the transition's callbacks (``logs=...`` for ``log``).

        If anything raises on the way, the machine is back in the state it started from, so the
        runner can be used again (``state.position.lifecycle_state`` still says where it failed).
        """
        standing = self.standing
        if standing.running:
            raise LifecycleError(f"transition {name!r} fired while the lifecycle runs (from a callback?)")
        origin = self.nodes[standing.rest]
        runner = self.runner
        for edge in origin.edges:
            if edge.name == name and edge.holds(runner.state, runner.control, runner.args):
                break
        else:
            raise LifecycleError(f"no transition {name!r} can be taken from state {origin.name!r}")
        standing.running = True
        try:
            standing.rest = self._run(edge.index, payload or codegen.EMPTY)
        finally:
            standing.running = False

    def emit(self, name: str, **payload: Any) -> None:
        """Fire the internal transition ``name`` of the current state (a no-op if not declared);
        ``payload`` goes to its callbacks (``logs=...`` for ``log``)."""
        fire = self._emits.get((self.current, name))
        if fire is not None:
            fire(payload or codegen.EMPTY)

    # -- reading -------------------------------------------------------------------------------
    def handlers(self, name: str) -> list[str]:
        """Labels of the callbacks bound to transition ``name``, in firing order."""
        for plan in self.plans:
            if plan.name == name:
                return [f"callback {h.label}" for h in plan.handlers]
        return []
