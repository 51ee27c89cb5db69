"""Mermaid ``flowchart`` text of a :class:`~lifecycle.graph.model.LifecycleGraph`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lifecycle.graph.style import ACTION_FILL, EVENT, GOLD, INK, JUNCTION_FILL, REST_FILL, TIMES, duration

if TYPE_CHECKING:
    from lifecycle.graph.model import LifecycleGraph

__all__ = ["mermaid_source"]


def _mid(name: str) -> str:
    return f"s_{name}"


def _mq(text: str) -> str:
    return text.replace('"', "#quot;")


def mermaid_source(g: LifecycleGraph) -> str:
    """A Mermaid ``flowchart`` of ``g``."""
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
    exits = g.ordered_exits()
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
            parts.append(f"{TIMES}{stat.count} · {duration(stat.time_ns)}")
        arrow = {"event": "-->", "plumbing": "-.->", "custom": "==>"}[e.kind]
        lines.append(f'  {_mid(e.source)} {arrow}|"{_mq("<br/>".join(parts))}"| {_mid(e.dest)}')
    lines += [
        f"  classDef rest fill:{REST_FILL},stroke:{EVENT},stroke-width:3px",
        f"  classDef action fill:{ACTION_FILL},stroke:{INK}",
        f"  classDef junction fill:{JUNCTION_FILL},stroke:{GOLD}",
    ]
    lines += [f"  class {','.join(ids)} {kind}" for kind, ids in classes.items() if ids]
    return "\n".join(lines) + "\n"
