"""The run trace: how often each transition fired and where the time went, per callback.

A :class:`Tracer` given to the :class:`~lifecycle.dispatch.Dispatcher` wraps each compiled callback
handler and effect, and each state's entry action, once, at compile time, with a
``perf_counter_ns`` timer that adds into a preallocated slot. Nothing is looked up while running; the
cost is two clock reads per wrapped call (about 0.2 µs). The trainer writes ``trace.json`` into
``output_dir`` when ``train()`` returns, or raises; ``lifecycle trace RUN_DIR`` reads it back
(:mod:`lifecycle.cli.trace`)::

    $ lifecycle trace runs/demo                  # transitions and the slowest callbacks
    $ lifecycle trace runs/demo -o run.svg       # the lifecycle drawn as a heat map of the run

``trace.json`` holds ``transitions`` (per name: count, time in its steps), ``edges`` (per
``name:source->dest``), ``states`` (entries and time in the entry action), ``callbacks`` (per callback
per transition), ``failure`` (the error that ended the run early, or null) and ``graph``, the
lifecycle to draw (so drawing needs neither torch nor the user's code). Times are nanoseconds of wall
clock.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from lifecycle.graph import EdgeStat, LifecycleGraph
from lifecycle.machine import Transition

__all__ = ["TRACE_FILE", "Tracer", "heat_graph", "load_trace"]

TRACE_FILE = "trace.json"
_FORMAT = "lifecycle-trace/1"
Step = Callable[[], Any]


class _Slot:
    """One timed thing: a step on an edge, or a state's entry action."""

    __slots__ = ("count", "edge", "kind", "label", "time_ns", "transition")

    def __init__(self, transition: str, edge: str, label: str, kind: str):
        self.transition = transition
        self.edge = edge
        self.label = label
        self.kind = kind
        self.count = 0
        self.time_ns = 0


def _timed(step: Step, slot: _Slot, counter: _Slot | None = None) -> Step:
    """``step`` adding its wall time to ``slot`` (and one to ``counter.count`` per call, if given)."""
    clock = time.perf_counter_ns
    if counter is not None:

        def timed_counted(
            step: Step = step, slot: _Slot = slot, counter: _Slot = counter, clock: Callable[[], int] = clock
        ) -> Any:
            t0 = clock()
            result = step()
            slot.time_ns += clock() - t0
            counter.count += 1
            return result

        return timed_counted

    def timed(step: Step = step, slot: _Slot = slot, clock: Callable[[], int] = clock) -> Any:
        t0 = clock()
        result = step()
        slot.time_ns += clock() - t0
        return result

    return timed


def _counter(slot: _Slot) -> Step:
    def count(slot: _Slot = slot) -> None:
        slot.count += 1

    return count


class Tracer:
    """Accumulates counts and times for one runner; survives recompiling its dispatcher."""

    def __init__(self) -> None:
        self._slots: dict[tuple[str, str, str], _Slot] = {}

    def _slot(self, transition: str, edge: str, label: str, kind: str) -> _Slot:
        key = (edge, kind, label)
        slot = self._slots.get(key)
        if slot is None:
            slot = self._slots[key] = _Slot(transition, edge, label, kind)
        return slot

    # -- compile time ---------------------------------------------------------------------------
    def wrap_edge(
        self, t: Transition, steps: Sequence[Step], labels: Sequence[str | None], shared: bool
    ) -> tuple[Step, ...]:
        """``steps`` of transition ``t`` with each callback and effect timed (``labels`` name the
        callbacks; flag resets are too cheap to time).

        The dispatcher counts firings per transition name; an edge whose name is ``shared`` with
        other edges also counts its own, in its first timed step or, lacking one, a bare counter.
        The count lives in a slot of the edge, so recompiling with other callbacks keeps it.
        """
        edge = f"{t.name}:{t.source}->{t.dest or ''}"
        counter = self._slot(t.name, edge, "", "count") if shared else None
        wrapped: list[Step] = []
        for step, label in zip(steps, labels, strict=True):
            if label is not None:
                kind, text = "callback", label.removeprefix("callback ")
            elif t.effect is not None and getattr(step, "__name__", None) == t.effect:
                kind, text = "effect", t.effect
            else:
                wrapped.append(step)
                continue
            wrapped.append(_timed(step, self._slot(t.name, edge, text, kind), counter))
            counter = None
        if counter is not None:
            wrapped.append(_counter(counter))  # last, so wrapped[i] still stands for steps[i]
        return tuple(wrapped)

    def wrap_action(self, state: str, action: Step) -> Step:
        """A state's entry action, timed (its entries are counted on the edges leading in)."""
        return _timed(action, self._slot("", state, action.__name__, "action"))

    # -- reading --------------------------------------------------------------------------------
    def report(
        self, counts: Mapping[str, int], graph: LifecycleGraph, failure: str | None = None
    ) -> dict[str, Any]:
        """The trace as plain data (what ``trace.json`` holds); ``failure`` says why a run stopped early."""
        edges: dict[str, dict[str, int]] = {}
        for e in graph.edges:
            counter = self._slots.get((e.key, "count", ""))
            shared = sum(1 for o in graph.edges if o.name == e.name) > 1
            count = (counter.count if counter is not None else 0) if shared else counts.get(e.name, 0)
            time_ns = sum(s.time_ns for s in self._slots.values() if s.edge == e.key and s.kind != "action")
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
        for slot in self._slots.values():
            if slot.kind == "action" and slot.edge in states:
                states[slot.edge]["time_ns"] += slot.time_ns
        callbacks: dict[tuple[str, str], dict[str, Any]] = {}
        for slot in self._slots.values():
            if slot.kind == "callback":
                row = callbacks.setdefault(
                    (slot.transition, slot.label),
                    {"transition": slot.transition, "callback": slot.label, "count": 0, "time_ns": 0},
                )
                row["time_ns"] += slot.time_ns
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
        self, path: str | Path, counts: Mapping[str, int], graph: LifecycleGraph, failure: str | None = None
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
