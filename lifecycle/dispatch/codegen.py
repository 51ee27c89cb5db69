"""The compiled lifecycle as Python source: generated once per callback list, compiled, and run.

:func:`generate` writes the machine's run loop for one lifecycle and its bound callbacks as plain
Python: guards called (or, for a flag, read) inline, flag resets inline, each bound handler called by
name in firing order, handlers of callbacks that override nothing never mentioned, and a state entered
by one transition only written out where that transition is taken, so the training cycle
``step -> optimize -> advance -> boundary`` is straight-line code. :func:`load` compiles the source
under the file name ``<lifecycle generated ...>`` (registered in :mod:`linecache`, so a traceback shows
the generated lines) and binds its names to the runner's methods and the callbacks' methods.

The source reads as the lifecycle: one block per state that several transitions enter, tried in the
order of how many transitions enter them (the busiest first); inside a block the entry action, then the
exits in the order their guards are tried. Bookkeeping is plain arithmetic: ``E[i] += 1`` counts the
``i``-th declared transition (:class:`~lifecycle.dispatch.counts.Counts`); with a tracer, the count of
the transition just taken decides whether the calls it leads to are timed (its first EXACT, then one in
EVERY: ``timed = ...``; the only way on from a state entered by one transition keeps that decision), and
a timed call's time goes to its slot ``T[k]``, one clock read between two calls timed side by side; how
many calls each slot had is read from the transition counts when the trace is written
(:meth:`lifecycle.trace.Tracer.follow`). Should a call raise, the line it was on tells which call it was
(:mod:`lifecycle.dispatch.errors`). ``lifecycle graph --format python`` prints the source.
"""

from __future__ import annotations

import hashlib
import json
import keyword
import linecache
import time
import types
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from lifecycle.callbacks.base import Event
from lifecycle.dispatch.errors import Site, failure
from lifecycle.dispatch.inline import inline_guard
from lifecycle.dispatch.plan import EdgePlan, Handler, adopter
from lifecycle.machine import Lifecycle, LifecycleError, Transition, describe_guard, guard_arity
from lifecycle.trace import EVERY, EXACT

if TYPE_CHECKING:
    from lifecycle.dispatch.counts import Counts
    from lifecycle.trace import Tracer

__all__ = ["Program", "generate", "load"]

#: an empty payload, shared: what a transition whose source state returned nothing hands its callbacks
EMPTY: types.MappingProxyType[str, Any] = types.MappingProxyType({})
#: names the generated code defines or uses itself
_RESERVED = frozenset(
    "run runner E B T clock fail adopt Event EMPTY LifecycleError state control args kwargs payload at "
    "t0 t1 timed r n edge exc error".split()
)


def _line(text: str) -> str:
    """``text`` kept on one line: names shown in comments cannot break out of them."""
    return " ".join(text.splitlines())


def _q(text: str) -> str:
    """``text`` as a double-quoted Python string literal."""
    return json.dumps(text)


@attrs.frozen
class Program:
    """Generated source, and what each name in it stands for."""

    source: str
    #: name in the source -> (state, the runner's method run on entering it)
    actions: dict[str, tuple[str, str]]
    #: name in the source -> (the transition, as errors name it; the runner's method it runs)
    effects: dict[str, tuple[str, str]]
    #: name in the source -> a guard it calls, or an object an inlined guard reads
    guards: dict[str, Any]
    #: name in the source -> (callback index, method name)
    handlers: dict[str, tuple[int, str]]
    #: line number in the source -> the call, guard or action written on that line
    sites: dict[int, Site]
    #: ``(state, transition)`` -> name of the function that fires that internal transition
    emits: dict[tuple[str, str], str]
    #: time slot -> the transitions whose counts are its calls (what leads to it)
    feeds: dict[int, tuple[int, ...]]


class _Names:
    """Unique Python identifiers for the things the source calls."""

    def __init__(self) -> None:
        self.used: set[str] = set(_RESERVED)

    def __call__(self, wanted: str) -> str:
        base = "".join(c if c.isalnum() or c == "_" else "_" for c in wanted) or "f"
        if base[0].isdigit() or keyword.iskeyword(base):
            base = f"_{base}"
        name, n = base, 2
        while name in self.used:
            name, n = f"{base}_{n}", n + 1
        self.used.add(name)
        return name


class _Writer:
    """Builds the source of one lifecycle and callback list."""

    def __init__(
        self,
        lifecycle: Lifecycle,
        plans: Sequence[EdgePlan],
        callback_names: Sequence[str],
        slot: Callable[[str, str, str, str], int] | None,
    ):
        self.lc = lifecycle
        self.plans = plans
        self.callback_names = callback_names
        self.slot = slot
        self.names = _Names()
        self.lines: list[str] = []
        self.sites: dict[int, Site] = {}
        self.feeds: dict[int, tuple[int, ...]] = {}
        #: (line count, indent, slot) right after a timed call's time was written
        self.just_timed: tuple[int, int, int] | None = None
        self.actions: dict[str, tuple[str, str]] = {}
        self.action_names: dict[str, str] = {}
        self.effects: dict[str, tuple[str, str]] = {}
        self.effect_names: dict[str, str] = {}
        self.guards: dict[str, Any] = {}
        self.guard_names: dict[int, str] = {}
        self.inlined: dict[int, str] = {}
        self.bound: dict[int, str] = {}
        self.handlers: dict[str, tuple[int, str]] = {}
        self.handler_names: dict[tuple[int, str], str] = {}
        self.emits: dict[tuple[str, str], str] = {}
        self.plan_of = {id(p.transition): p for p in plans}
        starts = {s.name for s in lifecycle.states if s.rest} | {lifecycle.initial}
        self.starts = starts
        incoming: dict[str, list[Transition]] = {s.name: [] for s in lifecycle.states}
        for t in lifecycle.transitions:
            if t.dest is not None:
                incoming[t.dest].append(t)
        self.heads = [
            s.name
            for s in lifecycle.states
            if not s.rest
            and incoming[s.name]
            and (len(incoming[s.name]) != 1 or incoming[s.name][0].source in starts)
        ]
        busy = {name: sum(t.source not in starts for t in incoming[name]) for name in self.heads}
        order = {name: i for i, name in enumerate(self.heads)}
        self.heads.sort(key=lambda name: (-busy[name], order[name]))

    # -- small pieces ----------------------------------------------------------------------------
    def put(self, indent: int, text: str, site: Site | None = None) -> None:
        """Add a line; ``site``: what an error raised on it came from."""
        self.lines.append("    " * indent + text)
        if site is not None:
            self.sites[len(self.lines)] = site

    def time(
        self, indent: int, transition: str, edge: str, label: str, kind: str, feeds: tuple[int, ...]
    ) -> int | None:
        """Before a timed call: the clock read, when the transition that led here was one of those
        sampled (:func:`lifecycle.trace.sampled`). ``feeds``: the transitions whose counts are the
        slot's calls. Returns the slot (None: nothing timed)."""
        if self.slot is None:
            return None
        k = self.slot(transition, edge, label, kind)
        self.feeds[k] = feeds
        before = self.just_timed
        if before is not None and before[:2] == (len(self.lines), indent):  # the line before closed a call
            self.lines[-1] = "    " * (indent + 1) + "t1 = clock()"
            self.put(indent + 1, f"T[{before[2]}] += t1 - t0")
            self.put(indent + 1, "t0 = t1")  # one clock read ends that call's time and starts this one's
        else:
            self.put(indent, "if timed:")
            self.put(indent + 1, "t0 = clock()")
        return k

    def leads_to_calls(self, t: Transition) -> bool:
        """Whether taking ``t`` leads to a timed call: its effect, a handler, its target's entry action."""
        plan = self.plan_of[id(t)]
        return bool(
            t.effect is not None
            or plan.handlers
            or (t.dest is not None and self.lc.state(t.dest).action is not None)
        )

    def timed(self, indent: int, k: int | None) -> None:
        """After a timed call: its time, when it was sampled."""
        if k is not None:
            self.put(indent, "if timed:")
            self.put(indent + 1, f"T[{k}] += clock() - t0")
            self.just_timed = (len(self.lines), indent, k)

    def guard(self, t: Transition) -> str:
        """The guard of ``t`` as an expression (empty: always taken): a flag read, the guard's own
        expression inlined (:mod:`lifecycle.dispatch.inline`), else a call."""
        g = t.guard
        if g is None:
            return ""
        if isinstance(g, str):
            return f"control.{g}"
        inlined = self.inlined.get(id(g))
        if inlined is None:
            inlined = self.inlined[id(g)] = inline_guard(g, self.bind) or ""
        if inlined:
            return inlined
        name = self.guard_names.get(id(g))
        if name is None:
            wanted = describe_guard(g)
            name = self.guard_names[id(g)] = self.names(
                wanted if wanted != "predicate" else f"{t.name}_guard"
            )
            self.guards[name] = g
        return f"{name}(state, control, args)" if guard_arity(g) == 3 else f"{name}(state, control)"

    def bind(self, wanted: str, value: Any) -> str:
        """The source's name for ``value``, an object an inlined guard reads."""
        name = self.bound.get(id(value))
        if name is None:
            name = self.bound[id(value)] = self.names(wanted)
            self.guards[name] = value
        return name

    @staticmethod
    def describe(t: Transition) -> str:
        guard = describe_guard(t.guard)
        text = f"{t.name}: {t.source} -> {t.dest}" if t.dest else f"{t.name}: {t.source} (internal)"
        return text + (f" [{guard}]" if guard else "") + (f" / {t.effect}" if t.effect else "")

    # -- a transition ----------------------------------------------------------------------------
    def take(self, indent: int, t: Transition, sampled: bool = False) -> bool:
        """Count ``t``, clear its flags, run its effect and handlers. ``sampled``: ``timed`` holds
        already for a transition taken as often as ``t`` (the one that led here, when ``t`` is the only
        way on). Returns whether ``timed`` holds for ``t``."""
        plan = self.plan_of[id(t)]
        self.put(indent, f"# {_line(self.describe(t))}")
        self.put(indent, f"E[{plan.index}] += 1")
        if self.slot is not None and self.leads_to_calls(t) and not sampled:
            e = f"E[{plan.index}]"
            self.put(indent, f"timed = {e} <= {EXACT} or not {e} & {EVERY - 1}")
            sampled = True
        if plan.resets:
            self.put(indent, " = ".join(f"control.{f}" for f in plan.resets) + " = False")
        if t.effect is not None:
            name = self.effect_names.get(t.effect)
            if name is None:
                name = self.effect_names[t.effect] = self.names(t.effect)
                self.effects[name] = (t.describe(), t.effect)
            k = self.time(indent, t.name, plan.key, t.effect, "effect", (plan.index,))
            self.put(indent, f"{name}()", Site("effect", f"effect {t.effect}", plan.label))
            self.timed(indent, k)
        for handler in plan.handlers:
            self.call(indent, plan, handler)
        return sampled

    def call(self, indent: int, plan: EdgePlan, h: Handler) -> None:
        key = (h.callback, h.attr)
        name = self.handler_names.get(key)
        if name is None:
            name = self.handler_names[key] = self.names(f"{self.callback_names[h.callback]}_{h.attr}")
            self.handlers[name] = key
        site = Site("callback", f"callback {h.label}", plan.label)
        k = self.time(indent, plan.name, plan.key, h.label, "callback", (plan.index,))
        sub = h.subscription
        if sub is None:
            extra = (
                [f"{plan.payload_key}=payload.get({_q(plan.payload_key)})"]
                if plan.payload_key and h.payload
                else []
            )
            extra += ["**kwargs"] if h.kwargs else []  # a method that never reads them is not given them
            self.put(indent, f"r = {name}({', '.join(['args', 'state', 'control', *extra])})", site)
            self.put(indent, "if r is not None and r is not control:")
            self.put(indent + 1, "adopt(r)", site)
        else:
            self.put(indent, "n = " + " + ".join([f"B[{_q(plan.name)}]", *self.edge_counts(plan.name)]))
            tests = [f"n == {sub.once}"] if sub.once is not None else []
            tests += [f"n % {sub.every} == 0"] if sub.every is not None else []
            inner = indent
            if tests:
                self.put(indent, f"if {' and '.join(tests)}:")
                inner += 1
            self.put(inner, f"{name}(Event(runner, {_q(plan.name)}, n, payload))", site)
        self.timed(indent, k)

    def edge_counts(self, name: str) -> list[str]:
        return [f"E[{p.index}]" for p in self.plans if p.name == name]

    def wants_payload(self, state: str) -> bool:
        """Whether a handler on a transition out of ``state`` reads the payload."""
        for t in self.lc.transitions:
            if t.source == state and t.dest is not None:
                plan = self.plan_of[id(t)]
                if any(h.subscription is not None or plan.payload_key for h in plan.handlers):
                    return True
        return False

    # -- a state ---------------------------------------------------------------------------------
    def go(self, indent: int, dest: str, in_loop: bool, sampled: bool = False) -> None:
        """Move on to ``dest``: rest there, hop to its block, or write it out here (``sampled``: whether
        ``timed`` holds for the transition that led to it)."""
        state = self.lc.state(dest)
        if state.rest:
            self.put(indent, f"state.position.lifecycle_state = {_q(dest)}")
            self.put(indent, f"return {_q(dest)}")
        elif dest in self.heads:
            self.put(indent, f"at = {_q(dest)}")
            if in_loop:
                self.put(indent, "continue")
        else:
            self.enter(indent, dest, sampled)

    def enter(self, indent: int, name: str, sampled: bool = False) -> None:
        """Enter state ``name``: its entry action, then its exits in the order their guards are tried.
        ``sampled``: written where the one transition into it is taken, with ``timed`` decided; a single
        unguarded exit is then taken exactly as often and keeps that decision."""
        state = self.lc.state(name)
        self.put(indent, _line(f"# -- state {name}" + (f": {state.action}()" if state.action else "")))
        self.put(indent, f"state.position.lifecycle_state = {_q(name)}")
        wants = self.wants_payload(name)
        if state.action is not None:
            action = self.action_names.get(name)
            if action is None:
                action = self.action_names[name] = self.names(state.action)
                self.actions[action] = (name, state.action)
            entering = tuple(p.index for p in self.plans if p.transition.dest == name)
            k = self.time(indent, "", name, state.action, "action", entering)
            call = f"payload = {action}() or EMPTY" if wants else f"{action}()"
            self.put(indent, call, Site("action", state.action, name))
            self.timed(indent, k)
            self.put(indent, "state = runner.state")
        elif wants:
            self.put(indent, "payload = EMPTY")
        exits = self.lc.outgoing(name)
        only_way_on = len(exits) == 1 and exits[0].guard is None
        for t in exits:
            guard = self.guard(t)
            if guard:
                inlined = callable(t.guard) and not guard.startswith(f"{self.guard_names.get(id(t.guard))}(")
                self.put(
                    indent,
                    f"if {guard}:" + (f"  # {_line(describe_guard(t.guard))}" if inlined else ""),
                    Site("guard", describe_guard(t.guard), self.plan_of[id(t)].label),
                )
                sampled_here = self.take(indent + 1, t)
                assert t.dest is not None
                self.go(indent + 1, t.dest, in_loop=True, sampled=sampled_here)
            else:
                sampled = self.take(indent, t, sampled and only_way_on)
                assert t.dest is not None
                self.go(indent, t.dest, in_loop=True, sampled=sampled)
                return
        tried = ", ".join(self.plan_of[id(t)].label for t in exits)
        self.put(
            indent, f"raise LifecycleError({_q(f'stuck in state {name!r}: no guard holds among {tried}')})"
        )

    # -- the functions ---------------------------------------------------------------------------
    def prologue(self, indent: int) -> None:
        for line in (
            "state = runner.state",
            "control = runner.control",
            "args = runner.args",
            "kwargs = runner.callback_kwargs",
            "try:",
        ):
            self.put(indent, line)

    def epilogue(self, indent: int) -> None:
        self.put(indent, "except BaseException as exc:")
        self.put(indent + 1, "error = fail(exc)")
        self.put(indent + 1, "if error is None:")
        self.put(indent + 2, "raise")
        self.put(indent + 1, "raise error from exc")

    def write_run(self) -> None:
        self.put(0, "def run(edge, payload):")
        self.put(1, '"""Take exit `edge` of the state the machine stands in (a rest state, or the initial')
        self.put(1, 'one), then go on until it rests again; return that state."""')
        self.prologue(1)
        fired = [t for t in self.lc.transitions if t.source in self.starts and t.dest is not None]
        for i, t in enumerate(fired):
            index = self.plan_of[id(t)].index
            self.put(2, f"{'if' if i == 0 else 'elif'} edge == {index}:")
            sampled = self.take(3, t)
            assert t.dest is not None
            self.go(3, t.dest, in_loop=False, sampled=sampled)
        self.put(2, "else:")
        self.put(3, 'raise LifecycleError(f"no transition {edge} leaves a rest state")')
        if self.heads:
            self.put(2, "while True:")
            for head in self.heads:
                self.put(3, f"if at == {_q(head)}:")
                self.enter(4, head)
        self.epilogue(1)

    def write_emit(self, t: Transition) -> None:
        name = self.names(f"emit_{t.source}_{t.name}")
        self.emits[(t.source, t.name)] = name
        self.put(0, "")
        self.put(0, "")
        self.put(0, f"def {name}(payload):")
        self.put(1, f'"""Fire {t.name!r}, internal to state {t.source!r}."""')
        self.prologue(1)
        self.take(2, t)
        self.epilogue(1)

    def program(self) -> Program:
        bound = {h.callback for p in self.plans for h in p.handlers}  # the others add nothing
        cbs = _line(", ".join(dict.fromkeys(n for i, n in enumerate(self.callback_names) if i in bound)))
        self.lines = [
            f"# The lifecycle {self.lc.name!r} "
            + (f"with its callbacks {cbs}," if cbs else "with no callbacks,"),
            "# generated by lifecycle.dispatch.codegen (`lifecycle graph --format python` prints it).",
            "# E[i] += 1 counts the i-th declared transition.",
            *(
                [
                    f"# The first {EXACT} times a transition is taken, then one in {EVERY}, the calls it",
                    "# leads to are timed: T[k] holds the time of slot k.",
                ]
                if self.slot
                else []
            ),
            "",
            "",
        ]
        self.write_run()
        for t in self.lc.transitions:
            if t.internal:
                self.write_emit(t)
        return Program(
            "\n".join(self.lines) + "\n",
            self.actions,
            self.effects,
            self.guards,
            self.handlers,
            self.sites,
            self.emits,
            self.feeds,
        )


def generate(
    lifecycle: Lifecycle,
    plans: Sequence[EdgePlan],
    callback_names: Sequence[str],
    slot: Callable[[str, str, str, str], int] | None = None,
) -> Program:
    """The source of ``lifecycle`` run with the handlers in ``plans``; ``callback_names`` name the
    callbacks (their class names); ``slot(transition, edge, label, kind)`` gives each timed call its
    time slot (:meth:`lifecycle.trace.Tracer.slot`; None: nothing timed)."""
    return _Writer(lifecycle, plans, callback_names, slot).program()


def load(
    program: Program, runner: Any, callbacks: Sequence[object], counts: Counts, tracer: Tracer | None
) -> dict[str, Callable[..., Any]]:
    """Compile ``program`` and bind it to ``runner`` and ``callbacks``; its functions by name."""
    # the dispatcher's table has checked that the runner has each action and effect
    namespace: dict[str, Any] = {
        name: getattr(runner, action) for name, (_, action) in program.actions.items()
    }
    namespace.update({name: getattr(runner, effect) for name, (_, effect) in program.effects.items()})
    namespace.update(program.guards)
    namespace.update({name: getattr(callbacks[i], attr) for name, (i, attr) in program.handlers.items()})
    sites = program.sites

    def fail(exc: BaseException) -> BaseException | None:
        trace = exc.__traceback__  # its first frame is the generated function that caught it
        return failure(exc, sites.get(trace.tb_lineno) if trace is not None else None, runner)

    namespace.update(
        runner=runner,
        E=counts.edges,
        B=counts.base,
        T=tracer.times if tracer is not None else None,
        clock=time.perf_counter_ns,
        fail=fail,
        adopt=adopter(runner.control),
        Event=Event,
        EMPTY=EMPTY,
        LifecycleError=LifecycleError,
    )
    # named by its content: a program compiled again (each Trainer, each change of callbacks) shares its
    # one linecache entry instead of adding another for the life of the process
    filename = f"<lifecycle generated #{hashlib.sha1(program.source.encode()).hexdigest()[:12]}>"
    linecache.cache[filename] = (len(program.source), None, program.source.splitlines(True), filename)
    exec(compile(program.source, filename, "exec"), namespace)
    if tracer is not None:
        tracer.follow(program.feeds, counts.edges)
    return {name: namespace[name] for name in ("run", *program.emits.values())}
