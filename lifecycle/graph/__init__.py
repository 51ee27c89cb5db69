"""Drawing a lifecycle: Mermaid and Graphviz DOT text, SVG/PNG through Graphviz's ``dot``.

``model`` is what a drawing shows (and how to read one), ``dot`` and ``mermaid`` write it out,
``graphviz`` runs the ``dot`` executable, and ``style`` is the palette they share.
"""

from lifecycle.graph.graphviz import GraphvizNotFound, render_dot
from lifecycle.graph.model import BINARY_FORMATS, SUFFIXES, EdgeStat, LifecycleGraph, callback_labels

__all__ = [
    "BINARY_FORMATS",
    "SUFFIXES",
    "EdgeStat",
    "GraphvizNotFound",
    "LifecycleGraph",
    "callback_labels",
    "render_dot",
]
