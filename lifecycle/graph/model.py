"""What a drawing of a lifecycle shows (:class:`LifecycleGraph`), and how to read one.

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

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from lifecycle.callbacks.base import HF_EVENTS
from lifecycle.callbacks.binding import bindings
from lifecycle.graph.dot import dot_source
from lifecycle.graph.graphviz import GraphvizNotFound, render_dot
from lifecycle.graph.mermaid import mermaid_source
from lifecycle.machine import Lifecycle, State, describe_guard

__all__ = ["BINARY_FORMATS", "SUFFIXES", "EdgeStat", "GraphEdge", "LifecycleGraph", "callback_labels"]

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


@attrs.frozen
class EdgeStat:
    """How often one edge (or state) was taken in a run, and the time its callbacks (or action) took."""

    count: int = 0
    time_ns: int = 0


@attrs.frozen
class GraphEdge:
    """One transition as drawn: its name, its ends (``dest`` None when internal), guard and effect."""

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
        """``event`` (a Hugging Face event), ``plumbing`` (``to_*``) or ``custom`` (a user's)."""
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
    edges: tuple[GraphEdge, ...]
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
                GraphEdge(t.name, t.source, t.dest, describe_guard(t.guard), t.effect)
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
                edges=tuple(GraphEdge(**e) for e in data["edges"]),
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

    def ordered_exits(self) -> dict[str, list[GraphEdge]]:
        """Per non-rest state, its exits in the order their guards are tried (a rest state's go by name)."""
        return {
            s.name: [e for e in self.edges if e.source == s.name and e.dest]
            for s in self.states
            if not s.rest
        }

    # -- output ---------------------------------------------------------------------------------
    def to_dot(self) -> str:
        """Graphviz DOT source."""
        return dot_source(self)

    def to_mermaid(self) -> str:
        """A Mermaid ``flowchart`` (renders on GitHub and in most Markdown viewers)."""
        return mermaid_source(self)

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


def callback_labels(lifecycle: Lifecycle, callbacks: Iterable[object]) -> dict[str, list[str]]:
    """Transition -> ``Class.method`` labels of the handlers ``callbacks`` bind, in firing order.

    The trainer's dispatcher binds by the same rule (:func:`~lifecycle.callbacks.binding.bindings`);
    here it is applied without building a trainer, so classes need no instance.
    """
    listed = list(callbacks)
    names = lifecycle.transition_names
    return {name: [b.label for cb in listed for b in bindings(cb, name)] for name in names}
