"""Graphviz DOT source of a :class:`~lifecycle.graph.model.LifecycleGraph`, styled by kind and heat."""

from __future__ import annotations

import html
import math
from typing import TYPE_CHECKING

from lifecycle.graph.style import (
    ACTION_FILL,
    CUSTOM,
    EVENT,
    FAINT,
    GOLD,
    HEAT,
    HEAT_KEY,
    INK,
    JUNCTION_FILL,
    KEY,
    PLUMBING,
    REST_FILL,
    TIMES,
    duration,
)
from lifecycle.machine import State

if TYPE_CHECKING:
    from lifecycle.graph.model import GraphEdge, LifecycleGraph

__all__ = ["dot_source"]


def dot_source(graph: LifecycleGraph) -> str:
    """The DOT source of ``graph``."""
    return _Dot(graph).source()


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _h(text: str) -> str:
    return html.escape(text, quote=True)


def _shade(value: int, top: int) -> tuple[str, bool]:
    """A heat colour for ``value`` on a log scale spanning the 4 decades below ``top``, and whether
    text on it should be white."""
    level = max(0.0, 1.0 + math.log10(max(value, 1) / max(top, 1)) / 4)
    index = min(int(level * len(HEAT)), len(HEAT) - 1)
    return HEAT[index], index >= 4


class _Dot:
    """Builds the DOT source of one graph."""

    def __init__(self, graph: LifecycleGraph):
        self.g = graph
        self.heat = graph.edge_stats is not None
        times = [s.time_ns for s in (graph.edge_stats or {}).values()]
        counts = [s.count for s in (graph.edge_stats or {}).values()]
        self.max_time = max(times, default=0) or 1
        self.max_count = max(counts, default=0) or 1
        self.exits = graph.ordered_exits()

    def source(self) -> str:
        g = self.g
        key = HEAT_KEY if self.heat else KEY
        title = f'<b>{_h(g.name)}</b> lifecycle<br/><font point-size="9" color="{FAINT}">{key}</font>'
        lines = [
            f"digraph {_q(g.name)} {{",
            f'  graph [rankdir=TB, newrank=true, nodesep=0.45, ranksep=0.42, pad=0.25, fontname="Helvetica",'
            f" fontsize=15, labelloc=t, label=<{title}>];",
            f'  node [fontname="Helvetica", fontsize=11, color="{INK}", fontcolor="{INK}", penwidth=1.2];',
            '  edge [fontname="Helvetica", fontsize=9, arrowsize=0.7];',
            f'  "__start__" [shape=point, width=0.14, color="{INK}", label=""];',
            f'  "__start__" -> {_q(g.initial)} [color="{INK}"];',
        ]
        lines += [f"  {_q(s.name)} [{self._node(s)}];" for s in g.states]
        lines += [
            f"  {_q(e.source)} -> {_q(e.dest)} [{self._edge(e)}];" for e in g.edges if e.dest is not None
        ]
        lines.append("}")
        return "\n".join(lines) + "\n"

    def _node(self, s: State) -> str:
        rows = [f"<b>{_h(s.name)}</b>"]
        if s.action:
            rows.append(f'<font point-size="9" color="{FAINT}" face="Courier">{_h(s.action)}()</font>')
        stat = (self.g.state_stats or {}).get(s.name)
        if stat is not None and stat.count:
            rows.append(
                f'<font point-size="9" color="{FAINT}">{TIMES}{stat.count} · {duration(stat.time_ns)}</font>'
            )
        for e in self.g.edges:
            if e.source == s.name and e.dest is None:
                rows.append(f'<font point-size="9" color="{EVENT}">{self._internal(e)}</font>')
        label = "<br/>".join(rows)
        tip = f", tooltip={_q(s.doc)}" if s.doc else ""
        if s.kind == "rest":
            style = (
                f'shape=box, style="rounded,filled", peripheries=2, fillcolor="{REST_FILL}", color="{EVENT}"'
            )
        elif s.kind == "junction":
            style = f'shape=diamond, style=filled, fillcolor="{JUNCTION_FILL}", color="{GOLD}", margin=0.02'
        else:
            fill, dark = self._fill(s)
            ink = ', fontcolor="white"' if dark else ""
            style = f'shape=box, style="rounded,filled", fillcolor="{fill}", margin="0.14,0.06"{ink}'
            if dark:
                label = label.replace(f'color="{FAINT}"', 'color="white"').replace(
                    f'color="{EVENT}"', 'color="white"'
                )
        return f"label=<{label}>, {style}{tip}"

    def _fill(self, s: State) -> tuple[str, bool]:
        stat = (self.g.state_stats or {}).get(s.name)
        if stat is None or not stat.time_ns:
            return ACTION_FILL, False
        return _shade(stat.time_ns, max(x.time_ns for x in (self.g.state_stats or {}).values()))

    def _internal(self, e: GraphEdge) -> str:
        text = f"⟲ <b>{_h(e.name)}</b>"
        stat = (self.g.edge_stats or {}).get(e.key)
        if stat is not None:
            text += f" {TIMES}{stat.count} · {duration(stat.time_ns)}"
        cbs = "".join(
            f'<br/><font color="{FAINT}" point-size="8">▸ {_h(c)}</font>'
            for c in self.g.callbacks.get(e.name, ())
        )
        return text + cbs

    def _edge(self, e: GraphEdge) -> str:
        exits = self.exits.get(e.source, [])
        rows = [f"<b>{_h(e.name)}</b>"]
        detail = []
        if len(exits) > 1:
            detail.append(f"#{exits.index(e) + 1}")
        if e.guard:
            detail.append(f"[{_h(e.guard)}]")
        if e.effect:
            detail.append(f"/ {_h(e.effect)}")
        if detail:
            rows.append(f'<font point-size="8">{" ".join(detail)}</font>')
        rows += [
            f'<font point-size="8" color="{FAINT}">▸ {_h(c)}</font>' for c in self.g.callbacks.get(e.name, ())
        ]
        color = {"event": EVENT, "plumbing": PLUMBING, "custom": CUSTOM}[e.kind]
        attrs_ = [f'color="{color}"', f'fontcolor="{color if e.kind != "plumbing" else FAINT}"']
        if e.kind == "plumbing":
            attrs_.append("style=dashed")
        attrs_.append("penwidth=1.3" if e.kind != "plumbing" else "penwidth=1.0")
        if self.heat:
            attrs_ = self._heat(e, rows)
        key = "xlabel" if e.source == e.dest else "label"  # a loop's label is placed clear of other edges
        tip = _q(f"{e.name}: {e.source} -> {e.dest}")
        return f"{key}=<{'<br/>'.join(rows)}>, {', '.join(attrs_)}, tooltip={tip}"

    def _heat(self, e: GraphEdge, rows: list[str]) -> list[str]:
        stat = (self.g.edge_stats or {}).get(e.key)
        if stat is None or stat.count == 0:
            return ['color="#c8c8c8"', 'fontcolor="#a0a0a0"', "style=dotted", "penwidth=1.0"]
        rows.append(f'<font point-size="8">{TIMES}{stat.count} · {duration(stat.time_ns)}</font>')
        width = 1.2 + 5.0 * math.log1p(stat.count) / math.log1p(self.max_count)
        shade, _ = _shade(stat.time_ns, self.max_time)
        return [f'color="{shade}"', f'fontcolor="{INK}"', f"penwidth={width:.2f}"]
