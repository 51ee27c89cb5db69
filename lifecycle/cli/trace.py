"""``lifecycle trace RUN_DIR``: which transitions fired, where the time went, and the run as a heat map.

Reads the ``trace.json`` a run left (:mod:`lifecycle.trace`); needs neither torch nor the user's code.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import Any

from lifecycle.graph import GraphvizNotFound
from lifecycle.trace import heat_graph, load_trace

__all__ = ["summary", "trace_command"]


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Plain-text columns: names to the left, numbers to the right."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    numeric = [all(r[i][:1].isdigit() for r in rows) for i in range(len(header))]
    fmt = "  ".join(f"{{:{'>' if num else '<'}{w}}}" for num, w in zip(numeric, widths, strict=True))
    return "\n".join(
        [fmt.format(*header), fmt.format(*("-" * w for w in widths)), *(fmt.format(*r) for r in rows)]
    )


def _us(ns: float) -> str:
    return f"{ns / 1e3:,.1f}"


def _ms(ns: float) -> str:
    return f"{ns / 1e6:,.2f}"


def summary(trace: Mapping[str, Any], top: int = 10) -> str:
    """The text ``lifecycle trace`` prints: transitions, states and the slowest callbacks."""
    out: list[str] = []
    if trace.get("failure"):
        out += [f"the run failed: {trace['failure']}", ""]
    fired = [(n, v) for n, v in trace["transitions"].items() if v["count"]]
    rows = [[n, str(v["count"]), _ms(v["time_ns"]), _us(v["time_ns"] / v["count"])] for n, v in fired]
    out += [
        f"transitions of the {trace['lifecycle']!r} lifecycle (time in their callbacks)",
        _table(["transition", "fired", "ms", "µs each"], rows),
    ]
    acted = [(n, v) for n, v in trace["states"].items() if v["time_ns"]]
    acted.sort(key=lambda nv: -nv[1]["time_ns"])
    rows = [[n, str(v["count"]), _ms(v["time_ns"]), _us(v["time_ns"] / max(v["count"], 1))] for n, v in acted]
    out += ["", "states (time in their entry action)", _table(["state", "entered", "ms", "µs each"], rows)]
    cbs = trace["callbacks"][:top]
    total = sum(r["time_ns"] for r in trace["callbacks"]) or 1
    rows = [
        [
            r["callback"],
            r["transition"],
            str(r["count"]),
            _ms(r["time_ns"]),
            _us(r["time_ns"] / max(r["count"], 1)),
            f"{100 * r['time_ns'] / total:.1f}%",
        ]
        for r in cbs
    ]
    out += ["", f"slowest callbacks (top {len(cbs)} of {len(trace['callbacks'])})"]
    out.append(
        _table(["callback", "transition", "calls", "ms", "µs each", "share"], rows)
        if rows
        else "(no callbacks ran)"
    )
    return "\n".join(out) + "\n"


def trace_command(run_dir: str, top: int = 10, output: str | None = None) -> int:
    """``lifecycle trace RUN_DIR``: print where the time went; ``-o FILE`` draws the run as a heat map."""
    try:
        trace = load_trace(run_dir)
        sys.stdout.write(summary(trace, top))
        if output:
            heat_graph(trace).render(output)
            print(f"heat map written to {output}")
    except (ValueError, KeyError, GraphvizNotFound, RuntimeError) as exc:
        print(f"lifecycle trace: {exc}", file=sys.stderr)
        return 1
    return 0
