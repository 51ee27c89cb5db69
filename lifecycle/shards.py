"""Evaluation and prediction shared out among the ranks, and their results gathered back whole.

The data is cut into the batches one process would evaluate, in order; each rank takes a contiguous
block of them. A rank with fewer batches than the others runs extra ones (the data's first batch
again) so that every rank runs the model as often as the others (a sharded model's collectives need
that), and keeps nothing of them. Concatenated in rank order, the ranks' results are then those of one
process, row for row: ``N`` rows in dataset order, none repeated, the same batches behind the loss.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from torch.utils.data import Sampler

from lifecycle.distributed import gather_everywhere
from lifecycle.gather import PADDING_INDEX, concat

__all__ = ["EvalShards", "gather_shards"]


class EvalShards(Sampler[list[int]]):
    """This rank's batches (lists of indices) of an evaluation over ``size`` examples."""

    def __init__(self, size: int, batch_size: int, *, rank: int, world_size: int) -> None:
        self.size = size
        self.batch_size = batch_size
        batches = math.ceil(size / batch_size)
        self.per_rank = math.ceil(batches / world_size)
        """Batches every rank runs."""
        self.first = rank * self.per_rank
        self.real_batches = max(0, min(self.per_rank, batches - self.first))
        """Batches whose results this rank keeps (the first ones); the others only run the model."""

    def _batch(self, index: int) -> list[int]:
        return list(range(index * self.batch_size, min((index + 1) * self.batch_size, self.size)))

    def __iter__(self) -> Iterator[list[int]]:
        for index in range(self.first, self.first + self.real_batches):
            yield self._batch(index)
        for _ in range(self.per_rank - self.real_batches):
            yield self._batch(0)

    def __len__(self) -> int:
        return self.per_rank


def gather_shards(
    values: tuple[Any, ...], samples: int, padding_index: int = PADDING_INDEX
) -> tuple[tuple[Any, ...], int]:
    """Each of ``values`` (a rank's gathered numpy arrays, or ``None``) joined over the ranks in rank
    order, on every rank, and the ranks' ``samples`` summed; arrays that differ in their second
    dimension (sequence lengths) are padded to the widest with ``padding_index``. In one process:
    ``values`` and ``samples`` as they are."""
    ranks = gather_everywhere((values, samples))
    if len(ranks) == 1:
        return values, samples
    joined = []
    for i in range(len(values)):
        pieces = [rank_values[i] for rank_values, _ in ranks if rank_values[i] is not None]
        joined.append(concat(pieces, padding_index) if pieces else None)
    return tuple(joined), sum(count for _, count in ranks)
