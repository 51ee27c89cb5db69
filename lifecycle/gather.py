"""Predictions, labels and losses gathered over the batches of an evaluation, as transformers gathers them.

A gathered value is a tensor or a nested tuple, list or dict of tensors, the same structure at every
batch. Leaves are concatenated on the first dimension; where batches differ in the second (sequences
padded per batch) the shorter ones are padded to the longest with ``padding_index`` (-100). A 0-d leaf
counts as a batch of one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

__all__ = ["Gathered", "concat", "detach", "find_batch_size", "to_numpy"]

PADDING_INDEX = -100


def find_batch_size(tree: Any) -> int | None:
    """The first dimension of the first tensor with one in a nested structure (``None``: no such tensor)."""
    if isinstance(tree, (list, tuple)):
        values: Any = tree
    elif isinstance(tree, Mapping):
        values = tree.values()
    elif isinstance(tree, (torch.Tensor, np.ndarray)):
        return int(tree.shape[0]) if tree.ndim >= 1 else None
    else:
        return None
    for value in values:
        found = find_batch_size(value)
        if found is not None:
            return found
    return None


def _map(fn: Any, tree: Any) -> Any:
    if isinstance(tree, (list, tuple)):
        return type(tree)(_map(fn, t) for t in tree)
    if isinstance(tree, Mapping):
        return type(tree)({k: _map(fn, v) for k, v in tree.items()})  # type: ignore[call-arg]
    return fn(tree)


def detach(tree: Any) -> Any:
    """Every tensor of a nested structure detached from the graph."""
    return _map(lambda t: t.detach() if isinstance(t, torch.Tensor) else t, tree)


def _numpy(t: Any) -> Any:
    t = t.cpu()
    return (t.float() if t.dtype == torch.bfloat16 else t).numpy()  # numpy has no bfloat16


def to_numpy(tree: Any) -> Any:
    """Every tensor of a nested structure as a numpy array on the CPU (bfloat16 as float32)."""
    return _map(_numpy, tree)


def concat(pieces: list[Any], padding_index: int = PADDING_INDEX) -> Any:
    """The nested structures of ``pieces`` joined leaf by leaf (tensors or arrays, padded on the second
    dimension to the widest)."""
    first = pieces[0]
    if isinstance(first, (list, tuple)):
        _same_kind(pieces, type(first))
        return type(first)(concat([p[i] for p in pieces], padding_index) for i in range(len(first)))
    if isinstance(first, Mapping):
        _same_kind(pieces, Mapping)
        joined = {k: concat([p[k] for p in pieces], padding_index) for k in first}
        return type(first)(joined)  # type: ignore[call-arg]
    if isinstance(first, torch.Tensor):
        return _pad_cat([torch.atleast_1d(p) for p in pieces], padding_index)
    if isinstance(first, np.ndarray):
        return _pad_cat([np.atleast_1d(p) for p in pieces], padding_index)
    raise TypeError(
        f"cannot gather a {type(first).__name__} over batches: predictions and labels are tensors, "
        "or tuples, lists or dicts of tensors"
    )


def _same_kind(pieces: list[Any], kind: type) -> None:
    for piece in pieces:
        if not isinstance(piece, kind):
            raise TypeError(
                f"cannot gather a {type(piece).__name__} with a {type(pieces[0]).__name__}: every batch "
                "must give predictions and labels of the same structure"
            )


def _pad_cat(leaves: list[Any], padding_index: int) -> Any:
    first = leaves[0]
    if any(leaf.ndim != first.ndim or leaf.shape[2:] != first.shape[2:] for leaf in leaves):
        shapes = sorted({tuple(leaf.shape) for leaf in leaves})
        raise ValueError(
            f"cannot gather tensors of shapes {shapes} over batches: they may differ only in their first "
            "two dimensions"
        )
    if first.ndim == 1 or all(leaf.shape[1] == first.shape[1] for leaf in leaves):
        if isinstance(first, torch.Tensor):
            return torch.cat(leaves)
        return np.concatenate(leaves)
    rows = sum(leaf.shape[0] for leaf in leaves)
    shape = (rows, max(leaf.shape[1] for leaf in leaves), *first.shape[2:])
    if isinstance(first, torch.Tensor):
        out: Any = first.new_full(shape, padding_index)
    else:
        out = np.full_like(first, padding_index, shape=shape)
    row = 0
    for leaf in leaves:
        out[row : row + leaf.shape[0], : leaf.shape[1]] = leaf
        row += leaf.shape[0]
    return out


class Gathered:
    """One gathered value (predictions, labels, inputs or losses): batches are held where they were
    computed until :meth:`to_cpu` joins them into numpy arrays (every ``eval_accumulation_steps`` batches,
    and at the end)."""

    def __init__(self, padding_index: int = PADDING_INDEX) -> None:
        self.padding_index = padding_index
        self._batches: list[Any] = []
        self._arrays: list[Any] = []

    def add(self, tree: Any) -> None:
        self._batches.append(tree)

    def to_cpu(self) -> None:
        """The batches held so far, joined, as numpy arrays on the CPU (the device memory freed)."""
        if self._batches:
            self._arrays.append(to_numpy(concat(self._batches, self.padding_index)))
            self._batches = []

    def arrays(self) -> Any:
        """Everything gathered, as numpy arrays (``None`` if nothing was)."""
        self.to_cpu()
        if not self._arrays:
            return None
        return self._arrays[0] if len(self._arrays) == 1 else concat(self._arrays, self.padding_index)
