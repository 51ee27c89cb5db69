"""Callbacks' states in a checkpoint: plain JSON in ``trainer_state.json``, tensors beside it.

Two protocols are saved: ours, ``state_dict()``/``load_state_dict(state)``, and transformers'
``ExportableState``, ``state()`` returning ``{"args": ..., "attributes": ...}``. Both are restored in
place, in callback order: the n-th callback of a class gets the n-th state saved for that class.
A state may hold tensors (an EMA of the weights, say): they go to ``callbacks.safetensors`` and the
JSON keeps ``{"__tensor__": key}`` where each was, in :mod:`lifecycle.checkpoint.tree`'s encoding
(non-finite floats, tuples and dicts with keys other than strings marked too), so nothing is pickled.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from lifecycle.checkpoint.folder import STATE_FILE, CheckpointError
from lifecycle.checkpoint.tree import TreeReader, TreeWriter, read_tensors

__all__ = [
    "CALLBACK_TENSORS_FILE",
    "callback_states",
    "load_callback_tensors",
    "restore_callback_states",
    "save_callback_tensors",
]

logger = logging.getLogger(__name__)

CALLBACK_TENSORS_FILE = "callbacks.safetensors"

Tensors = dict[str, Any]


def _stateful(cb: object) -> bool:
    """Our protocol: ``state_dict()`` / ``load_state_dict(state)``."""
    return callable(getattr(cb, "state_dict", None)) and callable(getattr(cb, "load_state_dict", None))


def _exportable(cb: object) -> bool:
    """transformers' ``ExportableState``: ``state()`` returns ``{"args": ..., "attributes": ...}``."""
    return not _stateful(cb) and callable(getattr(cb, "state", None))


def callback_states(callbacks: Iterable[object]) -> tuple[dict[str, list[Any]], Tensors]:
    """Each stateful callback's state by class name, in callback order (a list per class, so two
    callbacks of one class keep one entry each), as JSON data, and the tensors lifted out of them."""
    saved: dict[str, list[Any]] = {}
    writer = TreeWriter()
    for cb in callbacks:
        name = type(cb).__name__
        if _stateful(cb):
            state, method = cb.state_dict(), "state_dict()"  # type: ignore[attr-defined]
        elif _exportable(cb):
            state, method = cb.state(), "state()"  # type: ignore[attr-defined]
        else:
            continue
        saved.setdefault(name, []).append(writer.encode(state, f"callback {name}.{method}"))
    return saved, writer.tensors


def save_callback_tensors(folder: Path, tensors: Tensors) -> None:
    if tensors:
        from safetensors.torch import save_file

        save_file(tensors, str(folder / CALLBACK_TENSORS_FILE))


def load_callback_tensors(folder: Path) -> Tensors:
    """The tensors of the callbacks' states (none when the checkpoint has no such file)."""
    path = folder / CALLBACK_TENSORS_FILE
    return read_tensors(path) if path.is_file() else {}


def restore_callback_states(
    callbacks: Iterable[object], saved: Mapping[str, Any], tensors: Tensors | None = None
) -> None:
    """Give every stateful callback its saved state, in place. Callbacks with no saved state keep
    theirs, with a warning; so do saved states with no callback."""
    seen: dict[str, int] = {}
    for cb in callbacks:
        if not (_stateful(cb) or _exportable(cb)):
            continue
        name = type(cb).__name__
        index = seen.get(name, 0)
        seen[name] = index + 1
        states = saved.get(name, [])
        states = states if isinstance(states, list) else [states]
        if index >= len(states):
            logger.warning(
                "the checkpoint holds no state for callback %s #%d; it starts afresh", name, index + 1
            )
            continue
        state = TreeReader(tensors or {}).decode(states[index], f"{STATE_FILE}: callback {name}")
        try:
            if _stateful(cb):
                cb.load_state_dict(state)  # type: ignore[attr-defined]
            else:
                _restore_exported(cb, state)
        except CheckpointError:
            raise
        except Exception as exc:
            raise CheckpointError(f"{STATE_FILE}: callback {name}: its state does not load: {exc}") from exc
    for name, states in saved.items():
        count = len(states) if isinstance(states, list) else 1
        if count > seen.get(name, 0):
            logger.warning(
                "the checkpoint holds %d state(s) for callback %s; %d such callback(s) here",
                count,
                name,
                seen.get(name, 0),
            )


def _restore_exported(cb: object, state: Any) -> None:
    """transformers' ``ExportableState``, restored in place: the saved attributes are set on the
    callback as it is (transformers builds a new one from the saved arguments instead)."""
    name = type(cb).__name__
    attributes = state.get("attributes") if isinstance(state, dict) else None
    if not isinstance(attributes, dict):
        raise CheckpointError(f"{STATE_FILE}: callback {name}: expected {{'args': {{}}, 'attributes': {{}}}}")
    for key, value in attributes.items():
        setattr(cb, key, value)
    now = cb.state().get("args", {})  # type: ignore[attr-defined]
    if state.get("args", now) != now:
        logger.warning(
            "callback %s was saved with arguments %s and is built with %s now; the current ones stay",
            name,
            state.get("args"),
            now,
        )
