"""The run trace: how often each transition fired and where the time went, per callback.

A :class:`Tracer` given to the :class:`~lifecycle.dispatch.Dispatcher` holds one time slot per
callback, effect and entry action, found once, at compile time. The generated code counts each
transition with a plain list increment and times a sample of the calls between two reads of
``perf_counter_ns``: the calls a transition leads to are timed the first EXACT times it is taken, then
one time in EVERY (:func:`sampled`), so rare calls are timed exactly and a per-step call costs a clock
read now and then. A slot's calls are the counts of the transitions that lead to it, read when the
trace is written (:meth:`Tracer.follow`); the report scales each slot's sampled time up to all its
calls. Nothing is looked up while running. The trainer writes
``trace.json`` into ``output_dir`` when ``train()`` returns, or raises; ``lifecycle trace RUN_DIR``
reads it back (:mod:`lifecycle.cli.trace`)::

    $ lifecycle trace runs/demo                  # transitions and the slowest callbacks
    $ lifecycle trace runs/demo -o run.svg       # the lifecycle drawn as a heat map of the run

``trace.json`` holds ``transitions`` (per name: count, time in its steps), ``edges`` (per
``name:source->dest``), ``states`` (entries and time in the entry action), ``callbacks`` (per callback
per transition), ``failure`` (the error that ended the run early, or null) and ``graph``, the
lifecycle to draw (so drawing needs neither torch nor the user's code). Times are nanoseconds of wall
clock (estimated, past a slot's first EXACT calls).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lifecycle.graph import EdgeStat, LifecycleGraph

if TYPE_CHECKING:
    from lifecycle.dispatch.counts import Counts

__all__ = ["EVERY", "EXACT", "TRACE_FILE", "Tracer", "heat_graph", "load_trace", "sampled"]

TRACE_FILE = "trace.json"
#: each timed thing's first EXACT calls are timed, then one call in EVERY (a power of two)
EXACT, EVERY = 64, 16
_FORMAT = "lifecycle-trace/1"
Step = Callable[..., Any]


def sampled(calls: int) -> int:
    """How many of ``calls`` calls were timed: the first EXACT, then one in EVERY."""
    return calls if calls <= EXACT else EXACT + calls // EVERY - EXACT // EVERY


class _Slot:
    """What one time slot measures: a step on an edge, or a state's entry action."""

    __slots__ = ("edge", "kind", "label", "transition")

    def __init__(self, transition: str, edge: str, label: str, kind: str):
        self.transition = transition
        self.edge = edge
        self.label = label
        self.kind = kind


class Tracer:
    """Times for one runner, in :attr:`times` (one slot per callback, effect and entry action);
    survives recompiling its dispatcher, which counts the transitions (:class:`~lifecycle.dispatch.Counts`).

    The running code adds into the slots itself: the generated code reads the clock once after each
    timed call and gives the time since the previous read to that call (:mod:`lifecycle.dispatch.codegen`).
    """

    def __init__(self) -> None:
        #: nanoseconds per slot, of the calls timed
        self.times: list[int] = []
        #: calls per slot
        self.calls: list[int] = []
        #: calls per slot that were timed
        self.timed_calls: list[int] = []
        self._slots: list[_Slot] = []
        self._index: dict[tuple[str, str, str], int] = {}
        #: generated code: slot -> the transitions leading to it, and their counts when last settled
        self._feeds: dict[int, tuple[int, ...]] = {}
        self._edges: list[int] = []
        self._settled: dict[int, int] = {}

    # -- compile time ---------------------------------------------------------------------------
    def slot(self, transition: str, edge: str, label: str, kind: str) -> int:
        """The slot of one timed thing: ``kind`` ``callback`` or ``effect`` on ``edge``
        (``name:source->dest``), or ``action``, the entry action of state ``edge``."""
        key = (edge, kind, label)
        index = self._index.get(key)
        if index is None:
            index = self._index[key] = len(self._slots)
            self._slots.append(_Slot(transition, edge, label, kind))
            self.times.append(0)
            self.calls.append(0)
            self.timed_calls.append(0)
        return index

    def follow(self, feeds: dict[int, tuple[int, ...]], edges: list[int]) -> None:
        """From now on, slot ``k``'s calls are the calls of the transitions ``feeds[k]``, counted in
        ``edges`` (the generated code's way: it counts transitions, not calls). The calls of the slots
        followed until now are settled first, so a recompiled lifecycle adds to them."""
        self.settle()
        self._feeds, self._edges = feeds, edges
        self._settled = {i: edges[i] for ks in feeds.values() for i in ks}

    def settle(self) -> None:
        """Bring :attr:`calls` and :attr:`timed_calls` up to the transition counts."""
        edges, settled = self._edges, self._settled
        for k, feeding in self._feeds.items():
            for i in feeding:
                before, now = settled[i], edges[i]
                self.calls[k] += now - before
                self.timed_calls[k] += sampled(now) - sampled(before)
        self._settled = {i: edges[i] for i in settled}

    def timed(self, step: Step, index: int) -> Step:
        """``step`` counted in slot ``index`` and, when sampled, timed (the table dispatcher's way)."""
        clock, times, calls, timed_calls = time.perf_counter_ns, self.times, self.calls, self.timed_calls

        def timed(*args: Any) -> Any:
            calls[index] += 1
            n = calls[index]
            if n > EXACT and n % EVERY:
                return step(*args)
            timed_calls[index] += 1
            t0 = clock()
            try:
                return step(*args)
            finally:
                times[index] += clock() - t0

        return timed

    def estimate(self, index: int) -> int:
        """Slot ``index``'s time over all its calls, from the calls timed."""
        self.settle()
        return self._scaled(index)

    def _scaled(self, index: int) -> int:
        timed = self.timed_calls[index]
        return self.times[index] * self.calls[index] // timed if timed else 0

    # -- reading --------------------------------------------------------------------------------
    def report(self, counts: Counts, graph: LifecycleGraph, failure: str | None = None) -> dict[str, Any]:
        """The trace as plain data (what ``trace.json`` holds); ``failure`` says why a run stopped early."""
        self.settle()
        slots = [(slot, self._scaled(i)) for i, slot in enumerate(self._slots)]
        edges: dict[str, dict[str, int]] = {}
        for e in graph.edges:
            count = counts.edge(e.key) if counts.shared(e.name) else counts.get(e.name, 0)
            time_ns = sum(t for s, t in slots if s.edge == e.key and s.kind != "action")
            edges[e.key] = {"count": count, "time_ns": time_ns}
        transitions = {
            name: {
                "count": counts.get(name, 0),
                "time_ns": sum(v["time_ns"] for k, v in edges.items() if k.split(":")[0] == name),
            }
            for name in dict.fromkeys(e.name for e in graph.edges)
        }
        states = {s.name: {"count": 0, "time_ns": 0} for s in graph.states}
        for e in graph.edges:
            if e.dest is not None:
                states[e.dest]["count"] += edges[e.key]["count"]
        for slot, time_ns in slots:
            if slot.kind == "action" and slot.edge in states:
                states[slot.edge]["time_ns"] += time_ns
        callbacks: dict[tuple[str, str], dict[str, Any]] = {}
        for slot, time_ns in slots:
            if slot.kind == "callback":
                row = callbacks.setdefault(
                    (slot.transition, slot.label),
                    {"transition": slot.transition, "callback": slot.label, "count": 0, "time_ns": 0},
                )
                row["time_ns"] += time_ns
        for (name, _), row in callbacks.items():
            row["count"] = sum(v["count"] for k, v in edges.items() if k.split(":")[0] == name)
        return {
            "format": _FORMAT,
            "lifecycle": graph.name,
            "failure": failure,
            "transitions": transitions,
            "edges": edges,
            "states": states,
            "callbacks": sorted(callbacks.values(), key=lambda r: -r["time_ns"]),
            "graph": graph.to_dict(),
        }

    def write(
        self, path: str | Path, counts: Counts, graph: LifecycleGraph, failure: str | None = None
    ) -> Path:
        """Write :meth:`report` as JSON to ``path`` (a folder gets ``trace.json``)."""
        path = Path(path)
        if path.is_dir():
            path = path / TRACE_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.report(counts, graph, failure), indent=1))
        tmp.replace(path)
        return path


# -- reading a trace back --------------------------------------------------------------------------
def load_trace(run: str | Path) -> dict[str, Any]:
    """The trace of a run: ``run`` is its ``output_dir`` or the ``trace.json`` file itself."""
    path = Path(run)
    if path.is_dir():
        path = path / TRACE_FILE
    if not path.is_file():
        raise ValueError(f"no {TRACE_FILE} at {str(path)!r}: train() writes one when it returns or raises")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{str(path)!r} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != _FORMAT:
        raise ValueError(f"{str(path)!r} is not a lifecycle trace (expected format {_FORMAT!r})")
    return data


def heat_graph(trace: Mapping[str, Any]) -> LifecycleGraph:
    """The run's lifecycle, drawn as a heat map of what it did."""
    graph = LifecycleGraph.from_dict(trace["graph"])
    edges = {k: EdgeStat(v["count"], v["time_ns"]) for k, v in trace["edges"].items()}
    states = {k: EdgeStat(v["count"], v["time_ns"]) for k, v in trace["states"].items()}
    return graph.with_stats(edges, states)
