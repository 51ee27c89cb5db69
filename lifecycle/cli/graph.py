"""``lifecycle graph``: draw a lifecycle, the default one or a user's, with callbacks listed on its edges;
``--format python`` prints the source the trainer generates and runs for them instead
(:func:`lifecycle.dispatch.python_source`).

Neither torch nor the trainer is imported: the lifecycle and the callbacks are read from
``MODULE:ATTR`` specs, and callback classes are listed without being instantiated.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lifecycle.callbacks.base import TrainerCallback
from lifecycle.graph import BINARY_FORMATS, SUFFIXES, GraphvizNotFound, LifecycleGraph, callback_labels
from lifecycle.machine import Lifecycle, LifecycleError

__all__ = ["graph_command", "load_object"]


def load_object(spec: str) -> Any:
    """Import ``module:attr`` (``path/to/file.py:attr`` works too; dots in ``attr`` walk attributes)."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"{spec!r}: expected MODULE:ATTR, e.g. mypackage.lifecycles:SWA_LIFECYCLE")
    if module_name.endswith(".py"):
        file = Path(module_name)
        if not file.is_file():
            raise ValueError(f"{spec!r}: no file {module_name!r}")
        loader = importlib.util.spec_from_file_location(file.stem, file)
        assert loader is not None and loader.loader is not None
        module = importlib.util.module_from_spec(loader)
        sys.modules[file.stem] = module
        loader.loader.exec_module(module)
    else:
        if "" not in sys.path and str(Path.cwd()) not in sys.path:
            sys.path.insert(0, str(Path.cwd()))
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ValueError(f"{spec!r}: cannot import module {module_name!r}: {exc}") from exc
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"{spec!r}: module {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    return obj


def _format_for(fmt: str, output: str | None) -> str:
    """``--format`` as given, except that the default (mermaid) yields to a telling ``-o`` suffix."""
    if output is not None and fmt == "mermaid":
        return SUFFIXES.get(Path(output).suffix.lower(), fmt)
    return fmt


def graph_command(
    fmt: str, lifecycle_spec: str | None, callback_specs: Sequence[str], output: str | None
) -> int:
    """``lifecycle graph``: draw the default lifecycle (or ``MODULE:ATTR``) with the given callbacks."""
    try:
        if lifecycle_spec:
            lifecycle = load_object(lifecycle_spec)
            if not isinstance(lifecycle, Lifecycle):
                raise ValueError(f"{lifecycle_spec!r} is a {type(lifecycle).__name__}, not a Lifecycle")
        else:
            from lifecycle.default import TRAINING_LIFECYCLE

            lifecycle = TRAINING_LIFECYCLE
        callbacks: list[object] = []
        for spec in callback_specs:
            obj = load_object(spec)
            items = obj if isinstance(obj, (list, tuple)) else [obj]
            for item in items:
                if not (
                    isinstance(item, TrainerCallback)
                    or (isinstance(item, type) and issubclass(item, TrainerCallback))
                ):
                    raise ValueError(f"{spec!r}: {item!r} is not a TrainerCallback class or instance")
            callbacks += items
        fmt = _format_for(fmt, output)
        if fmt == "python":
            from lifecycle.dispatch import python_source
            from lifecycle.trace import Tracer

            data = python_source(lifecycle, callbacks, Tracer()).encode()
        else:
            data = LifecycleGraph.of(lifecycle, callback_labels(lifecycle, callbacks)).to_bytes(fmt)
    except (ValueError, LifecycleError, GraphvizNotFound, RuntimeError) as exc:
        print(f"lifecycle graph: {exc}", file=sys.stderr)
        return 1
    if output:
        Path(output).write_bytes(data)
    elif fmt in BINARY_FORMATS and fmt != "svg":
        sys.stdout.buffer.write(data)
    else:
        sys.stdout.write(data.decode())
    return 0
