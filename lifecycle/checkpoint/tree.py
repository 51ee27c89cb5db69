"""A state dict (tensors at any depth of dicts, lists and tuples) as safetensors + JSON, read back
without an unpickler.

``save_tree(folder, "optimizer", obj)`` writes ``optimizer.safetensors``, every tensor under a number,
and ``optimizer.json``, the structure with each tensor replaced by ``{"__tensor__": "<number>"}``.
JSON stands for itself where it can (strings, ints, finite floats, bools, ``None``, lists, dicts with
string keys); the rest is marked:

=============================  ==========================================================
``{"__float__": "inf"}``       ``inf``, ``-inf`` or ``nan``
``{"__tuple__": [...]}``       a tuple (an optimizer's ``betas``)
``{"__dict__": [[k, v], ...]}``  a dict with keys other than strings (an optimizer's state by
                               parameter index), or with a marker's name among its keys
=============================  ==========================================================

Anything else is refused when saving, with the place in the tree named. Reading parses JSON and
safetensors only, so a crafted file can neither run code nor expand beyond its size: the JSON is
bounded in size (:data:`MAX_JSON_BYTES`) and nesting (:data:`MAX_DEPTH`), safetensors' header by
design. Every error names the file. torch is imported only by the functions that move tensors.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lifecycle.checkpoint.folder import CheckpointError

__all__ = [
    "MAX_DEPTH",
    "MAX_JSON_BYTES",
    "TreeReader",
    "TreeWriter",
    "json_file",
    "load_tree",
    "read_tensors",
    "save_tree",
    "tensor_file",
]

MAX_DEPTH = 100
"""Containers nested deeper than this are refused, when saving and when reading."""
MAX_JSON_BYTES = 64 << 20
"""A structure file larger than this is refused before it is read (its tensors are not counted)."""
FORMAT = 1

TENSOR, FLOAT, TUPLE, DICT = "__tensor__", "__float__", "__tuple__", "__dict__"
MARKERS = frozenset({TENSOR, FLOAT, TUPLE, DICT})
_NON_FINITE = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}


def json_file(name: str) -> str:
    return f"{name}.json"


def tensor_file(name: str) -> str:
    return f"{name}.safetensors"


class _Bad(Exception):
    """What is wrong, and where in the tree (filled in on the way out)."""

    def __init__(self, problem: str):
        super().__init__(problem)
        self.problem = problem
        self.path: list[str] = []

    def at(self, step: object) -> _Bad:
        self.path.insert(0, f"[{step!r}]")
        return self

    def __str__(self) -> str:
        return f"{self.problem} at ${''.join(self.path)}"


def _too_deep() -> _Bad:
    return _Bad(f"nested deeper than {MAX_DEPTH} levels")


def _items(pairs: Iterator[tuple[Any, Any]], convert: Any, depth: int) -> Iterator[tuple[Any, Any]]:
    for key, value in pairs:
        try:
            yield key, convert(value, depth + 1)
        except _Bad as bad:
            raise bad.at(key) from None


class TreeWriter:
    """Turns trees into JSON data, collecting their tensors (one writer may serve several trees)."""

    def __init__(self) -> None:
        import torch

        self.torch = torch
        self.tensors: dict[str, Any] = {}
        self.storages: set[int] = set()

    def tensor(self, value: Any) -> dict[str, str]:
        if value.layout != self.torch.strided:
            raise _Bad(f"a {value.layout} tensor cannot be saved (only dense ones)")
        tensor = value.detach().to("cpu").contiguous()
        storage = tensor.untyped_storage().data_ptr()
        if storage in self.storages or tensor.numel() == 0:  # safetensors refuses shared memory
            tensor = tensor.clone()
        self.storages.add(tensor.untyped_storage().data_ptr())
        key = str(len(self.tensors))
        self.tensors[key] = tensor
        return {TENSOR: key}

    def value(self, value: Any, depth: int = 0) -> Any:
        if depth > MAX_DEPTH:
            raise _too_deep()
        if value is None or isinstance(value, (bool, str)):
            return value
        if isinstance(value, int):
            return int(value)
        if isinstance(value, float):
            if math.isfinite(value):
                return float(value)
            return {FLOAT: "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")}
        if isinstance(value, self.torch.Tensor):
            return self.tensor(value)
        if isinstance(value, tuple):
            return {TUPLE: [v for _, v in _items(enumerate(value), self.value, depth)]}
        if isinstance(value, list):
            return [v for _, v in _items(enumerate(value), self.value, depth)]
        if isinstance(value, dict):
            if all(type(k) is str for k in value) and not MARKERS & value.keys():
                return dict(_items(iter(value.items()), self.value, depth))
            pairs = []
            for key, item in value.items():
                if key is not None and not isinstance(key, (str, int, float, tuple)):
                    raise _Bad(f"a dict key of type {type(key).__qualname__} cannot be saved")
                try:
                    pairs.append([self.value(key, depth + 1), self.value(item, depth + 1)])
                except _Bad as bad:
                    raise bad.at(key) from None
            return {DICT: pairs}
        raise _Bad(
            f"a {type(value).__module__}.{type(value).__qualname__} cannot be saved "
            "(only tensors, dicts, lists, tuples, strings, numbers, bools and None)"
        )

    def encode(self, obj: Any, where: str) -> Any:
        """``obj`` as JSON data; what cannot be saved is a :class:`CheckpointError` naming ``where``."""
        try:
            return self.value(obj)
        except _Bad as bad:
            raise CheckpointError(f"{where}: {bad}") from None


def save_tree(folder: Path, name: str, obj: Any) -> None:
    """Write ``obj`` as ``<name>.safetensors`` (its tensors) and ``<name>.json`` (the rest)."""
    from safetensors.torch import save_file

    writer = TreeWriter()
    try:
        tree = writer.value(obj)
    except _Bad as bad:
        raise CheckpointError(f"{folder / json_file(name)}: {bad}") from None
    text = json.dumps({"format": FORMAT, "tree": tree}, allow_nan=False, separators=(",", ":"))
    save_file(writer.tensors, str(folder / tensor_file(name)))
    (folder / json_file(name)).write_text(text + "\n")


class TreeReader:
    """Turns JSON data back into a tree, taking its tensors from a safetensors file."""

    def __init__(self, tensors: dict[str, Any]):
        self.tensors = tensors
        self.used: set[str] = set()

    def marked(self, mark: str, inner: Any, depth: int) -> Any:
        if mark == TENSOR:
            if not isinstance(inner, str) or inner not in self.tensors:
                raise _Bad(f"tensor {inner!r} is not in the safetensors file")
            self.used.add(inner)
            return self.tensors[inner]
        if mark == FLOAT:
            if not isinstance(inner, str) or inner not in _NON_FINITE:
                raise _Bad(f"{FLOAT} must be one of {sorted(_NON_FINITE)}, not {inner!r}")
            return _NON_FINITE[inner]
        if not isinstance(inner, list):
            raise _Bad(f"{mark} must hold a list, not {type(inner).__name__}")
        if mark == TUPLE:
            return tuple(v for _, v in _items(enumerate(inner), self.value, depth))
        result = {}
        for i, pair in enumerate(inner):
            if not (isinstance(pair, list) and len(pair) == 2):
                raise _Bad("expected a [key, value] pair").at(i)
            try:
                key = self.value(pair[0], depth + 1)
                hash(key)
            except _Bad as bad:
                raise bad.at(i) from None
            except TypeError:
                raise _Bad(f"a {type(key).__name__} cannot be a dict key").at(i) from None
            try:
                result[key] = self.value(pair[1], depth + 1)
            except _Bad as bad:
                raise bad.at(key) from None
        return result

    def value(self, value: Any, depth: int = 0) -> Any:
        if depth > MAX_DEPTH:
            raise _too_deep()
        if isinstance(value, list):
            return [v for _, v in _items(enumerate(value), self.value, depth)]
        if isinstance(value, dict):
            marks = MARKERS & value.keys()
            if len(value) == 1 and marks:
                ((mark, inner),) = value.items()
                return self.marked(mark, inner, depth)
            if marks:
                raise _Bad(f"{', '.join(sorted(marks))} must be the only key of its object")
            return dict(_items(iter(value.items()), self.value, depth))
        return value

    def decode(self, tree: Any, where: str) -> Any:
        """What :meth:`TreeWriter.encode` made of a tree; a malformed one names ``where``."""
        try:
            return self.value(tree)
        except _Bad as bad:
            raise CheckpointError(f"{where}: {bad}") from None


def _read_json(path: Path) -> Any:
    size = path.stat().st_size
    if size > MAX_JSON_BYTES:
        raise CheckpointError(f"{path}: {size} bytes, more than the {MAX_JSON_BYTES} a state file may have")
    try:
        data = json.loads(path.read_bytes())
    except RecursionError:
        raise CheckpointError(f"{path}: nested deeper than {MAX_DEPTH} levels") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict) or "tree" not in data or not isinstance(data.get("format"), int):
        raise CheckpointError(f'{path}: expected {{"format": {FORMAT}, "tree": ...}}')
    if data["format"] > FORMAT:
        raise CheckpointError(f"{path}: format {data['format']} is newer than this release (reads {FORMAT})")
    return data["tree"]


def read_tensors(path: Path) -> dict[str, Any]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from None


def load_tree(folder: Path, name: str) -> Any:
    """What :func:`save_tree` wrote as ``name``, tensors on the CPU; :class:`CheckpointError` names
    the file and the place in the tree when either file is missing, malformed or they disagree."""
    structure, tensors = folder / json_file(name), folder / tensor_file(name)
    for path in (structure, tensors):
        if not path.is_file():
            raise CheckpointError(f"{path}: missing")
    data = _read_json(structure)
    reader = TreeReader(read_tensors(tensors))
    try:
        tree = reader.value(data)
    except _Bad as bad:
        raise CheckpointError(f"{structure}: {bad}") from None
    unused = sorted(set(reader.tensors) - reader.used)
    if unused:
        raise CheckpointError(f"{tensors}: holds tensors {structure.name} does not refer to: {unused[:5]}")
    return tree
