"""The lifecycle as data: states, named transitions, guards; validated when declared.

A :class:`Lifecycle` is a plain declaration. States may name an *entry action* (a method of the
object that runs the machine, usually the :class:`~lifecycle.Trainer`); transitions carry a name
(the event that callbacks attach to), a source, a destination and an optional *guard*:

* ``None`` — always taken;
* a string — the name of a :class:`~lifecycle.TrainerControl` flag (``"should_save"``);
* a callable ``guard(state, control)`` or ``guard(state, control, args)`` returning a bool.

Running a lifecycle follows the UML state-machine reading ``event [guard] / effect``: from the
current state the first transition (in declaration order) whose guard holds is taken, its effect and
callbacks run, then the destination's entry action runs. A state marked ``rest`` waits for the
caller (``train()``, ``evaluate()``, ``predict()``). A transition with no destination is *internal*:
the state's own work fires it (``prediction_step`` for each evaluation batch) without leaving.

``transitions`` is the reference semantics: :meth:`Lifecycle.to_machine` builds the equivalent
``transitions.Machine``, and :mod:`lifecycle.dispatch` compiles the same declaration into the
Python source the trainer actually runs (or, for reference, a table).
"""

from __future__ import annotations

import inspect
import itertools
import keyword
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

import attrs

from lifecycle.control import FLAGS

if TYPE_CHECKING:
    from lifecycle.graph import LifecycleGraph

GuardFn = Callable[..., bool]
Guard = Union[str, GuardFn, None]  # noqa: UP007  (a runtime alias; Python 3.10 cannot `|` a string)

__all__ = ["Guard", "Lifecycle", "LifecycleError", "State", "Transition", "guard_arity"]


class LifecycleError(ValueError):
    """An invalid lifecycle declaration; the message names the offending state or transition."""


@attrs.frozen
class State:
    """A place in the lifecycle. ``action`` names the runner's method performed on entry."""

    name: str
    action: str | None = None
    rest: bool = False
    doc: str = ""

    @property
    def kind(self) -> str:
        """``rest`` (the machine waits here), ``action`` (work on entry) or ``junction`` (neither)."""
        return "rest" if self.rest else "action" if self.action else "junction"


@attrs.frozen
class Transition:
    """A named move ``source -> dest`` taken when ``guard`` holds (``dest=None``: internal)."""

    name: str
    source: str
    dest: str | None
    guard: Guard = None
    effect: str | None = None
    doc: str = ""

    @property
    def internal(self) -> bool:
        return self.dest is None

    def describe(self) -> str:
        arrow = f"{self.source} -> {self.dest}" if self.dest else f"{self.source} (internal)"
        return f"transition {self.name!r} ({arrow})"


def guard_arity(guard: GuardFn) -> int:
    """How many positional arguments a guard callable takes: 2 ``(state, control)`` or 3 (+ args)."""
    try:
        params = inspect.signature(guard).parameters.values()
    except (TypeError, ValueError):  # builtins without a signature: assume the short form
        return 2
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if any(p.kind is p.VAR_POSITIONAL for p in params) or len(positional) >= 3:
        return 3
    return 2


def describe_guard(guard: Guard) -> str:
    """A short text for a guard, used in graphs and error messages."""
    if guard is None:
        return ""
    if isinstance(guard, str):
        return guard
    name = getattr(guard, "__name__", type(guard).__name__)
    return name if name != "<lambda>" else "predicate"


def _as_state(value: State | str) -> State:
    return value if isinstance(value, State) else State(value)


def _as_transition(value: Transition | Sequence[Any]) -> Transition:
    if isinstance(value, Transition):
        return value
    if not 3 <= len(value) <= 5:
        raise LifecycleError(f"a transition is (name, source, dest[, guard[, effect]]), got {value!r}")
    return Transition(*value)


def _states(values: Iterable[State | str]) -> tuple[State, ...]:
    return tuple(_as_state(v) for v in values)


def _transitions(values: Iterable[Transition | Sequence[Any]]) -> tuple[Transition, ...]:
    return tuple(_as_transition(v) for v in values)


@attrs.frozen
class Lifecycle:
    """A validated declaration of states and transitions. Immutable; :meth:`extend` makes a new one."""

    states: tuple[State, ...] = attrs.field(converter=_states)
    transitions: tuple[Transition, ...] = attrs.field(converter=_transitions)
    initial: str = "init"
    name: str = "lifecycle"

    def __attrs_post_init__(self) -> None:
        _validate(self)

    # -- queries ---------------------------------------------------------------------------
    @property
    def state_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.states)

    @property
    def transition_names(self) -> tuple[str, ...]:
        """Every distinct transition name, in declaration order."""
        return tuple(dict.fromkeys(t.name for t in self.transitions))

    def state(self, name: str) -> State:
        for s in self.states:
            if s.name == name:
                return s
        raise LifecycleError(f"unknown state {name!r}; states are {', '.join(self.state_names)}")

    def outgoing(self, source: str) -> tuple[Transition, ...]:
        """External transitions leaving ``source``, in the order their guards are tried."""
        return tuple(t for t in self.transitions if t.source == source and not t.internal)

    def internal(self, source: str) -> tuple[Transition, ...]:
        return tuple(t for t in self.transitions if t.source == source and t.internal)

    def sketch(self, indent: int = 0) -> str:
        """The lifecycle as plain text, a state a row: its entry action, its internal transitions and
        its exits in the order their guards are tried (``name [guard] / effect -> dest``)."""
        width = max(len(s.name) for s in self.states) + 2
        action_width = max(len(s.action or "") for s in self.states) + 2
        lines = [f"{'state':<{width}}{'entry action':<{action_width}}exits, tried in this order"]
        for s in self.states:
            rows = [f"{t.name} (internal)" for t in self.internal(s.name)]
            for t in self.outgoing(s.name):
                guard = describe_guard(t.guard)
                condition = f" [{guard}]" if guard else ""
                effect = f" / {t.effect}" if t.effect else ""
                rows.append(f"{t.name}{condition}{effect} -> {t.dest}")
            action = s.action or ("(rest)" if s.rest else "-")
            head = f"{s.name:<{width}}{action:<{action_width}}"
            lines += [(head if i == 0 else " " * len(head)) + row for i, row in enumerate(rows or [""])]
        pad = " " * indent
        return "\n".join((pad + line).rstrip() for line in lines)

    # -- building --------------------------------------------------------------------------
    def extend(
        self,
        states: Iterable[State | str] = (),
        transitions: Iterable[Transition | Sequence[Any]] = (),
        *,
        name: str | None = None,
    ) -> Lifecycle:
        """A new lifecycle with more states and transitions.

        Added transitions leaving an existing state are tried *before* that state's own, so a
        guarded detour (``("optimizer_step", "optimize", "swa_update", predicate)``) takes
        priority and the declared fallback still applies when its guard fails.
        """
        added = _transitions(transitions)
        merged: list[Transition] = []
        placed: set[str] = set()
        for t in self.transitions:
            if t.source not in placed:
                merged.extend(a for a in added if a.source == t.source)
                placed.add(t.source)
            merged.append(t)
        merged.extend(a for a in added if a.source not in placed)
        return Lifecycle(
            states=self.states + _states(states),
            transitions=tuple(merged),
            initial=self.initial,
            name=name or self.name,
        )

    def to_machine(
        self, model: Any = None, *, conditions: Callable[[Transition], Callable[..., bool]] | None = None
    ) -> Any:
        """The equivalent ``transitions.Machine``: one trigger ``advance`` holding every external
        transition in declaration order, plus one trigger per transition name.

        ``conditions(transition)`` supplies each guarded transition's guard as a zero-argument predicate
        (without it, guards are left out and always pass). Each taken transition calls
        ``model.on_taken(name)`` when the model has that method.
        """
        from transitions import Machine

        target = model if model is not None else _Recorder()
        machine: Any = Machine(
            model=target,
            states=[s.name for s in self.states],
            initial=self.initial,
            auto_transitions=False,
            ignore_invalid_triggers=False,
        )
        for t in self.transitions:
            if t.internal:
                continue
            conds = [conditions(t)] if conditions and t.guard is not None else []
            after = [_taken(target, t.name)]
            machine.add_transition("advance", t.source, t.dest, conditions=conds, after=after)
            machine.add_transition(t.name, t.source, t.dest, conditions=conds, after=after)
        return machine

    # -- drawing (lifecycle.graph) ---------------------------------------------------------------
    def to_mermaid(self) -> str:
        """A Mermaid flowchart of every state and transition."""
        return _graph(self).to_mermaid()

    def to_dot(self) -> str:
        """Graphviz DOT source of every state and transition."""
        return _graph(self).to_dot()

    def render(self, path: str | Path, format: str | None = None) -> Path:
        """Draw to ``path``: SVG/PNG/PDF by suffix or ``format`` (needs Graphviz), ``.dot``, ``.mmd``."""
        return _graph(self).render(path, format)

    def _repr_svg_(self) -> str | None:
        return _graph(self)._repr_svg_()

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        return _graph(self)._repr_mimebundle_(include, exclude)


def _graph(lifecycle: Lifecycle) -> LifecycleGraph:
    from lifecycle.graph import LifecycleGraph

    return LifecycleGraph.of(lifecycle)


class _Recorder:
    def __init__(self) -> None:
        self.taken: list[str] = []

    def on_taken(self, name: str) -> None:
        self.taken.append(name)


def _taken(model: Any, name: str) -> Callable[[], None]:
    def record() -> None:
        hook = getattr(model, "on_taken", None)
        if hook is not None:
            hook(name)

    return record


# -- validation ------------------------------------------------------------------------------
def _validate(lc: Lifecycle) -> None:
    names = [s.name for s in lc.states]
    for s in lc.states:
        if not s.name or not isinstance(s.name, str):
            raise LifecycleError(f"a state needs a non-empty name, got {s.name!r}")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise LifecycleError(f"duplicate state {dupes[0]!r}: each state is declared once")
    known = set(names)
    if lc.initial not in known:
        raise LifecycleError(f"initial state {lc.initial!r} is not a declared state")

    seen: set[tuple[str, str, str | None]] = set()
    for t in lc.transitions:
        if not t.name.isidentifier() or keyword.iskeyword(t.name):
            raise LifecycleError(f"{t.describe()}: a transition name must be a Python identifier")
        for role, state in (("source", t.source), ("destination", t.dest)):
            if state is not None and state not in known:
                raise LifecycleError(
                    f"{t.describe()}: unknown {role} state {state!r}; declared states are {', '.join(names)}"
                )
        _check_guard(t)
        key = (t.name, t.source, t.dest)
        if key in seen:
            raise LifecycleError(f"duplicate {t.describe()}: declared twice")
        seen.add(key)

    for s in lc.states:
        out = lc.outgoing(s.name)
        for earlier, later in itertools.pairwise(out):
            if earlier.guard is None and not s.rest:  # a rest state's exits are taken by name
                raise LifecycleError(
                    f"{later.describe()} is never taken: {earlier.describe()} before it has no guard"
                )
        if not out and not s.rest:
            raise LifecycleError(
                f"state {s.name!r} has no way on: give it an outgoing transition or mark it rest=True"
            )

    reachable = {lc.initial}
    frontier = [lc.initial]
    while frontier:
        here = frontier.pop()
        for t in lc.outgoing(here):
            assert t.dest is not None
            if t.dest not in reachable:
                reachable.add(t.dest)
                frontier.append(t.dest)
    unreachable = [n for n in names if n not in reachable]
    if unreachable:
        raise LifecycleError(
            f"state {unreachable[0]!r} is unreachable from {lc.initial!r}: "
            "no chain of transitions leads to it"
        )

    settles = {s.name for s in lc.states if s.rest}  # states from which the machine can come to rest
    grew = True
    while grew:
        before = len(settles)
        settles |= {t.source for t in lc.transitions if t.dest in settles}
        grew = len(settles) > before
    stuck = [n for n in names if n not in settles]
    if stuck:
        raise LifecycleError(
            f"state {stuck[0]!r} never comes to rest: no chain of transitions leads from it to a rest "
            f"state ({', '.join(s.name for s in lc.states if s.rest) or 'none declared'}), so train() "
            "would never return; add a way back"
        )


def _check_arity(t: Transition, guard: GuardFn) -> None:
    """A guard is called as ``guard(state, control)`` or ``guard(state, control, args)``."""
    try:
        signature = inspect.signature(guard)
    except (TypeError, ValueError):  # builtins without a signature: taken on trust
        return
    for arguments in ((None, None, None), (None, None)):
        try:
            signature.bind(*arguments)
        except TypeError:
            continue
        return
    raise LifecycleError(
        f"{t.describe()}: guard {describe_guard(guard)}{signature} cannot be called as "
        "guard(state, control) or guard(state, control, args)"
    )


def _check_guard(t: Transition) -> None:
    g = t.guard
    if g is None:
        return
    if callable(g):
        _check_arity(t, g)
        return
    if isinstance(g, str):
        if g not in FLAGS:
            raise LifecycleError(
                f"{t.describe()}: guard {g!r} is not a TrainerControl flag; "
                f"flags are {', '.join(FLAGS)} (or pass a callable)"
            )
        return
    raise LifecycleError(f"{t.describe()}: guard {g!r} is neither a TrainerControl flag name nor a callable")
