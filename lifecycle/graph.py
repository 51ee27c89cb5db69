"""Drawing a lifecycle: Mermaid and Graphviz DOT text, SVG/PNG through Graphviz's ``dot``.

:class:`LifecycleGraph` is a plain picture of a lifecycle: its states, its transitions with their
guards, the callbacks bound to each transition in firing order and, for a finished run, how often each
edge fired and how long its callbacks took (a heat map). It holds no callables, so it round-trips
through JSON (``trace.json`` embeds one) and drawing never imports the user's code or torch::

    TRAINING_LIFECYCLE.render("lifecycle.svg")          # the declaration alone
    trainer.lifecycle_graph().render("lifecycle.png")   # with the trainer's callbacks per edge

Reading a drawing: rest states (where ``train()``/``evaluate()``/``predict()`` start) have a double
border, states with an entry action show it under their name, junctions (no action: ``init``,
``boundary``) are diamonds. Solid blue edges are Hugging Face events, dashed grey ones are the
lifecycle's own plumbing (``to_*``), purple ones are transitions a user added. An edge reads
``name``, then ``[guard] / effect``; where a state has several exits, ``#n`` is the order in which
their guards are tried. Internal transitions (fired by a state's own work) are listed inside it.
"""

from __future__ import annotations

import html
import math
import shutil
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from lifecycle.callbacks.base import HF_EVENTS
from lifecycle.callbacks.binding import bindings
from lifecycle.machine import Lifecycle, State, describe_guard

__all__ = [
    "BINARY_FORMATS",
    "SUFFIXES",
    "EdgeStat",
    "GraphvizNotFound",
    "LifecycleGraph",
    "callback_labels",
    "render_dot",
]

#: file suffix -> format understood by :meth:`LifecycleGraph.render`
SUFFIXES = {
    ".svg": "svg",
    ".png": "png",
    ".pdf": "pdf",
    ".dot": "dot",
    ".gv": "dot",
    ".mmd": "mermaid",
    ".md": "mermaid",
}
#: formats drawn by Graphviz's ``dot`` (the others are text)
BINARY_FORMATS = ("svg", "png", "pdf")

# palette: one place to restyle every drawing
_EVENT, _PLUMBING, _CUSTOM = "#2b5797", "#8c8c8c", "#8e44ad"
_REST_FILL, _ACTION_FILL, _JUNCTION_FILL = "#dce8f7", "#f7f7f7", "#fff1c9"
_INK, _FAINT, _GOLD = "#222222", "#6b6b6b", "#b08a2e"
_BLUE = _EVENT
_X = "\u00d7"  # the multiplication sign of "x3": taken three times
_HEAT = ("#fdd49e", "#fdbb84", "#fc8d59", "#ef6548", "#d7301f", "#b30000", "#7f0000")


_KEY = (
    "blue: Hugging Face events · dashed: lifecycle plumbing · purple: added transitions · "
    "[guard] / effect · #n: order in which guards are tried · ⟲ internal transition · ▸ callback"
)
_HEAT_KEY = "a run: edge width = times taken · colour = time in callbacks (log scale) · dotted: never taken"


class GraphvizNotFound(RuntimeError):
    """Graphviz's ``dot`` executable is not on ``PATH``."""


@attrs.frozen
class EdgeStat:
    """How often one edge (or state) was taken in a run, and the time its callbacks (or action) took."""

    count: int = 0
    time_ns: int = 0


@attrs.frozen
class _Edge:
    name: str
    source: str
    dest: str | None
    guard: str = ""
    effect: str | None = None

    @property
    def key(self) -> str:
        """A stable id: ``name:source->dest`` (``dest`` empty for an internal transition)."""
        return f"{self.name}:{self.source}->{self.dest or ''}"

    @property
    def kind(self) -> str:
        return "event" if self.name in HF_EVENTS else "plumbing" if self.name.startswith("to_") else "custom"


def _stats(raw: Mapping[str, Any] | None) -> dict[str, EdgeStat] | None:
    if raw is None:
        return None
    return {
        k: v if isinstance(v, EdgeStat) else EdgeStat(int(v["count"]), int(v["time_ns"]))
        for k, v in raw.items()
    }


@attrs.frozen
class LifecycleGraph:
    """What a drawing of a lifecycle shows; build it with :meth:`of` or :meth:`from_dict`."""

    name: str
    initial: str
    states: tuple[State, ...]
    edges: tuple[_Edge, ...]
    #: transition name -> callback labels (``Class.method``) in firing order
    callbacks: Mapping[str, tuple[str, ...]] = attrs.field(factory=dict)
    #: edge key -> stat, and state name -> stat: set for a heat map of a run
    edge_stats: Mapping[str, EdgeStat] | None = None
    state_stats: Mapping[str, EdgeStat] | None = None

    @classmethod
    def of(cls, lifecycle: Lifecycle, callbacks: Mapping[str, Sequence[str]] | None = None) -> LifecycleGraph:
        """The graph of ``lifecycle``, with ``callbacks`` (transition -> labels) listed on its edges."""
        return cls(
            name=lifecycle.name,
            initial=lifecycle.initial,
            states=tuple(lifecycle.states),
            edges=tuple(
                _Edge(t.name, t.source, t.dest, describe_guard(t.guard), t.effect)
                for t in lifecycle.transitions
            ),
            callbacks={k: tuple(v) for k, v in (callbacks or {}).items() if v},
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LifecycleGraph:
        """The inverse of :meth:`to_dict` (how ``trace.json`` stores the graph of a run)."""
        try:
            return cls(
                name=data["name"],
                initial=data["initial"],
                states=tuple(State(**s) for s in data["states"]),
                edges=tuple(_Edge(**e) for e in data["edges"]),
                callbacks={k: tuple(v) for k, v in data.get("callbacks", {}).items()},
                edge_stats=_stats(data.get("edge_stats")),
                state_stats=_stats(data.get("state_stats")),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a lifecycle graph description: {exc!r}") from exc

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self, recurse=True)

    def with_stats(
        self, edges: Mapping[str, EdgeStat], states: Mapping[str, EdgeStat] | None = None
    ) -> LifecycleGraph:
        """The same graph drawn as a heat map: edge width by count, colour by time."""
        return attrs.evolve(self, edge_stats=dict(edges), state_stats=dict(states or {}))

    # -- output ---------------------------------------------------------------------------------
    def to_dot(self) -> str:
        """Graphviz DOT source."""
        return _Dot(self).source()

    def to_mermaid(self) -> str:
        """A Mermaid ``flowchart`` (renders on GitHub and in most Markdown viewers)."""
        return _mermaid(self)

    def render(self, path: str | Path, format: str | None = None) -> Path:
        """Write the drawing to ``path``; the format is ``format`` or follows the suffix
        (``.svg``, ``.png``, ``.pdf`` through ``dot``; ``.dot``/``.gv``; ``.mmd``/``.md`` Mermaid)."""
        path = Path(path)
        fmt = format or SUFFIXES.get(path.suffix.lower())
        if fmt is None:
            raise ValueError(
                f"cannot tell the format of {str(path)!r}: "
                f"use a suffix among {', '.join(SUFFIXES)} or pass format="
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.to_bytes(fmt))
        return path

    def to_bytes(self, fmt: str) -> bytes:
        if fmt == "dot":
            return self.to_dot().encode()
        if fmt == "mermaid":
            return self.to_mermaid().encode()
        if fmt in BINARY_FORMATS:
            return render_dot(self.to_dot(), fmt)
        raise ValueError(
            f"unknown graph format {fmt!r}: choose among mermaid, dot, {', '.join(BINARY_FORMATS)}"
        )

    # -- notebooks ------------------------------------------------------------------------------
    def _repr_svg_(self) -> str | None:
        try:
            return render_dot(self.to_dot(), "svg").decode()
        except GraphvizNotFound:
            return None

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        bundle = {"text/markdown": f"```mermaid\n{self.to_mermaid()}```\n", "text/plain": repr(self)}
        svg = self._repr_svg_()
        if svg is not None:
            bundle["image/svg+xml"] = svg
        return bundle

    def __repr__(self) -> str:
        heat = ", heat map" if self.edge_stats is not None else ""
        return (
            f"<LifecycleGraph {self.name!r}: {len(self.states)} states, {len(self.edges)} transitions{heat}>"
        )


def render_dot(source: str, fmt: str) -> bytes:
    """Run Graphviz's ``dot -T<fmt>`` on ``source``."""
    exe = shutil.which("dot")
    if exe is None:
        raise GraphvizNotFound(
            "drawing SVG or PNG needs Graphviz's `dot` executable, which is not on PATH. Install Graphviz "
            "(Debian/Ubuntu: apt-get install graphviz; macOS: brew install graphviz; conda: conda install "
            "graphviz), or draw Mermaid text instead (format='mermaid', or a .mmd file), which needs nothing."
        )
    done = subprocess.run([exe, f"-T{fmt}"], input=source.encode(), capture_output=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(
            f"dot -T{fmt} failed ({done.returncode}): {done.stderr.decode(errors='replace').strip()}"
        )
    return done.stdout


# -- DOT --------------------------------------------------------------------------------------------
def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _h(text: str) -> str:
    return html.escape(text, quote=True)


def _ms(ns: int) -> str:
    for unit, scale in (("s", 1e9), ("ms", 1e6)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}"
    return f"{ns / 1e3:.3g} µs"


def _shade(value: int, top: int) -> tuple[str, bool]:
    """A heat colour for ``value`` on a log scale spanning the 4 decades below ``top``, and whether
    text on it should be white."""
    level = max(0.0, 1.0 + math.log10(max(value, 1) / max(top, 1)) / 4)
    index = min(int(level * len(_HEAT)), len(_HEAT) - 1)
    return _HEAT[index], index >= 4


class _Dot:
    """Builds the DOT source of one graph."""

    def __init__(self, graph: LifecycleGraph):
        self.g = graph
        self.heat = graph.edge_stats is not None
        times = [s.time_ns for s in (graph.edge_stats or {}).values()]
        counts = [s.count for s in (graph.edge_stats or {}).values()]
        self.max_time = max(times, default=0) or 1
        self.max_count = max(counts, default=0) or 1
        self.exits = _ordered_exits(graph)

    def source(self) -> str:
        g = self.g
        key = _HEAT_KEY if self.heat else _KEY
        title = f'<b>{_h(g.name)}</b> lifecycle<br/><font point-size="9" color="{_FAINT}">{key}</font>'
        lines = [
            f"digraph {_q(g.name)} {{",
            f'  graph [rankdir=TB, newrank=true, nodesep=0.45, ranksep=0.42, pad=0.25, fontname="Helvetica",'
            f" fontsize=15, labelloc=t, label=<{title}>];",
            f'  node [fontname="Helvetica", fontsize=11, color="{_INK}", fontcolor="{_INK}", penwidth=1.2];',
            '  edge [fontname="Helvetica", fontsize=9, arrowsize=0.7];',
            f'  "__start__" [shape=point, width=0.14, color="{_INK}", label=""];',
            f'  "__start__" -> {_q(g.initial)} [color="{_INK}"];',
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
            rows.append(f'<font point-size="9" color="{_FAINT}" face="Courier">{_h(s.action)}()</font>')
        stat = (self.g.state_stats or {}).get(s.name)
        if stat is not None and stat.count:
            rows.append(
                f'<font point-size="9" color="{_FAINT}">{_X}{stat.count} · {_ms(stat.time_ns)}</font>'
            )
        for e in self.g.edges:
            if e.source == s.name and e.dest is None:
                rows.append(f'<font point-size="9" color="{_EVENT}">{self._internal(e)}</font>')
        label = "<br/>".join(rows)
        tip = f", tooltip={_q(s.doc)}" if s.doc else ""
        if s.kind == "rest":
            style = (
                f'shape=box, style="rounded,filled", peripheries=2, fillcolor="{_REST_FILL}", color="{_BLUE}"'
            )
        elif s.kind == "junction":
            style = f'shape=diamond, style=filled, fillcolor="{_JUNCTION_FILL}", color="{_GOLD}", margin=0.02'
        else:
            fill, dark = self._fill(s)
            ink = ', fontcolor="white"' if dark else ""
            style = f'shape=box, style="rounded,filled", fillcolor="{fill}", margin="0.14,0.06"{ink}'
            if dark:
                label = label.replace(f'color="{_FAINT}"', 'color="white"').replace(
                    f'color="{_EVENT}"', 'color="white"'
                )
        return f"label=<{label}>, {style}{tip}"

    def _fill(self, s: State) -> tuple[str, bool]:
        stat = (self.g.state_stats or {}).get(s.name)
        if stat is None or not stat.time_ns:
            return _ACTION_FILL, False
        return _shade(stat.time_ns, max(x.time_ns for x in (self.g.state_stats or {}).values()))

    def _internal(self, e: _Edge) -> str:
        text = f"⟲ <b>{_h(e.name)}</b>"
        stat = (self.g.edge_stats or {}).get(e.key)
        if stat is not None:
            text += f" {_X}{stat.count} · {_ms(stat.time_ns)}"
        cbs = "".join(
            f'<br/><font color="{_FAINT}" point-size="8">▸ {_h(c)}</font>'
            for c in self.g.callbacks.get(e.name, ())
        )
        return text + cbs

    def _edge(self, e: _Edge) -> str:
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
            f'<font point-size="8" color="{_FAINT}">▸ {_h(c)}</font>'
            for c in self.g.callbacks.get(e.name, ())
        ]
        color = {"event": _EVENT, "plumbing": _PLUMBING, "custom": _CUSTOM}[e.kind]
        attrs_ = [f'color="{color}"', f'fontcolor="{color if e.kind != "plumbing" else _FAINT}"']
        if e.kind == "plumbing":
            attrs_.append("style=dashed")
        attrs_.append("penwidth=1.3" if e.kind != "plumbing" else "penwidth=1.0")
        if self.heat:
            attrs_ = self._heat(e, rows)
        key = "xlabel" if e.source == e.dest else "label"  # a loop's label is placed clear of other edges
        tip = _q(f"{e.name}: {e.source} -> {e.dest}")
        return f"{key}=<{'<br/>'.join(rows)}>, {', '.join(attrs_)}, tooltip={tip}"

    def _heat(self, e: _Edge, rows: list[str]) -> list[str]:
        stat = (self.g.edge_stats or {}).get(e.key, EdgeStat())
        if stat.count == 0:
            return ['color="#c8c8c8"', 'fontcolor="#a0a0a0"', "style=dotted", "penwidth=1.0"]
        rows.append(f'<font point-size="8">{_X}{stat.count} · {_ms(stat.time_ns)}</font>')
        width = 1.2 + 5.0 * math.log1p(stat.count) / math.log1p(self.max_count)
        shade, _ = _shade(stat.time_ns, self.max_time)
        return [f'color="{shade}"', f'fontcolor="{_INK}"', f"penwidth={width:.2f}"]


def _ordered_exits(g: LifecycleGraph) -> dict[str, list[_Edge]]:
    """Per non-rest state, its exits in the order their guards are tried (a rest state's go by name)."""
    return {s.name: [e for e in g.edges if e.source == s.name and e.dest] for s in g.states if not s.rest}


# -- Mermaid -----------------------------------------------------------------------------------------
def _mid(name: str) -> str:
    return f"s_{name}"


def _mq(text: str) -> str:
    return text.replace('"', "#quot;")


def _mermaid(g: LifecycleGraph) -> str:
    lines = [f"%% {g.name} lifecycle", "flowchart TD", f'  start(("start")) --> {_mid(g.initial)}']
    classes: dict[str, list[str]] = {"rest": [], "action": [], "junction": []}
    for s in g.states:
        parts = [f"<b>{s.name}</b>"] + ([f"<i>{s.action}()</i>"] if s.action else [])
        for e in g.edges:
            if e.source == s.name and e.dest is None:
                cbs = g.callbacks.get(e.name, ())
                parts.append(f"⟲ {e.name}" + (f": {', '.join(cbs)}" if cbs else ""))
        label = _mq("<br/>".join(parts))
        shape = {"rest": '(["{}"])', "action": '("{}")', "junction": '{{"{}"}}'}[s.kind]
        lines.append(f"  {_mid(s.name)}{shape.format(label)}")
        classes[s.kind].append(_mid(s.name))
    exits = _ordered_exits(g)
    for e in g.edges:
        if e.dest is None:
            continue
        parts = [e.name]
        order = exits.get(e.source, [])
        detail = ([f"#{order.index(e) + 1}"] if len(order) > 1 else []) + (
            [f"[{e.guard}]"] if e.guard else []
        )
        if e.effect:
            detail.append(f"/ {e.effect}")
        if detail:
            parts.append(" ".join(detail))
        parts += [f"▸ {c}" for c in g.callbacks.get(e.name, ())]
        stat = (g.edge_stats or {}).get(e.key)
        if stat is not None:
            parts.append(f"{_X}{stat.count} · {_ms(stat.time_ns)}")
        arrow = {"event": "-->", "plumbing": "-.->", "custom": "==>"}[e.kind]
        lines.append(f'  {_mid(e.source)} {arrow}|"{_mq("<br/>".join(parts))}"| {_mid(e.dest)}')
    lines += [
        f"  classDef rest fill:{_REST_FILL},stroke:{_EVENT},stroke-width:3px",
        f"  classDef action fill:{_ACTION_FILL},stroke:{_INK}",
        f"  classDef junction fill:{_JUNCTION_FILL},stroke:{_GOLD}",
    ]
    lines += [f"  class {','.join(ids)} {kind}" for kind, ids in classes.items() if ids]
    return "\n".join(lines) + "\n"


# -- callbacks without a trainer -----------------------------------------------------------------------
def callback_labels(lifecycle: Lifecycle, callbacks: Iterable[object]) -> dict[str, list[str]]:
    """Transition -> ``Class.method`` labels of the handlers ``callbacks`` bind, in firing order.

    The trainer's dispatcher binds by the same rule (:func:`~lifecycle.callbacks.binding.bindings`);
    here it is applied without building a trainer, so classes need no instance.
    """
    listed = list(callbacks)
    names = lifecycle.transition_names
    return {name: [b.label for cb in listed for b in bindings(cb, name)] for name in names}
