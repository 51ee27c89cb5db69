"""The ``lifecycle`` command: its arguments, and which module runs each subcommand.

One module per subcommand (``demo``, ``graph``, ``inspect``, ``trace``, ``upgrade``), imported only
when it runs: only ``demo`` and ``upgrade`` import torch; the other commands, and ``--help``, answer
without it.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lifecycle", description="PyTorch training as a declared state machine."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser(
        "demo", help="train a small classifier; checkpoints, metrics and the graph go to disk"
    )
    demo.add_argument(
        "--output-dir", default="runs/demo", help="where everything is written (default: runs/demo)"
    )
    demo.add_argument(
        "--epochs", type=int, default=30, help="upper bound on epochs; early stopping may end sooner"
    )
    demo.add_argument("--no-progress", action="store_true", help="print logs instead of a progress bar")

    graph = sub.add_parser("graph", help="draw a lifecycle (the default one unless --lifecycle is given)")
    graph.add_argument(
        "--format",
        choices=["mermaid", "dot", "svg", "png", "python"],
        default="mermaid",
        help="python: the source the trainer generates and runs for the lifecycle and callbacks",
    )
    graph.add_argument(
        "--lifecycle", metavar="MODULE:ATTR", help="a Lifecycle object to draw instead of the default"
    )
    graph.add_argument(
        "--callbacks", nargs="*", default=[], metavar="MODULE:ATTR", help="callbacks to list on edges"
    )
    graph.add_argument("-o", "--output", help="file to write (default: standard output for text formats)")

    inspect = sub.add_parser("inspect", help="what a checkpoint holds, and whether it is intact")
    inspect.add_argument("path", help="a checkpoint-<step> folder")

    upgrade = sub.add_parser(
        "upgrade", help="rewrite a checkpoint of an earlier release without pickles (only one you trust)"
    )
    upgrade.add_argument("paths", nargs="+", metavar="path", help="checkpoint-<step> folders")

    trace = sub.add_parser("trace", help="which transitions fired in a run and where the time went")
    trace.add_argument("run_dir", help="a run's output_dir (holding trace.json)")
    trace.add_argument("--top", type=int, default=10, help="how many of the slowest callbacks to list")
    trace.add_argument("-o", "--output", help="also draw the run as a heat map (.svg, .png, .dot or .mmd)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    ns = _parser().parse_args(argv)
    if ns.command == "demo":
        from lifecycle.cli.demo import run_demo

        return run_demo(ns.output_dir, epochs=ns.epochs, progress=not ns.no_progress)
    if ns.command == "graph":
        from lifecycle.cli.graph import graph_command

        return graph_command(ns.format, ns.lifecycle, ns.callbacks, ns.output)
    if ns.command == "inspect":
        from lifecycle.cli.inspect import inspect_command

        return inspect_command(ns.path)
    if ns.command == "upgrade":
        from lifecycle.cli.upgrade import upgrade_command

        return upgrade_command(ns.paths)
    from lifecycle.cli.trace import trace_command

    return trace_command(ns.run_dir, top=ns.top, output=ns.output)
