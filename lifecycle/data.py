"""Resumable sampling: each epoch's order is a pure function of (seed, epoch), so a run can start
mid-epoch by slicing the order, without loading or collating a single skipped example."""

from __future__ import annotations

from collections.abc import Iterator, Sized

import torch
from torch.utils.data import Sampler

__all__ = ["EpochSampler"]


class EpochSampler(Sampler[int]):
    """Indices of one epoch, shuffled by ``seed + epoch`` when ``shuffle``; ``start`` skips ahead."""

    def __init__(self, data: Sized, *, seed: int, shuffle: bool = True):
        self.size = len(data)
        self.seed = seed
        self.shuffle = shuffle
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Select the epoch's order and the first example to yield (O(1) mid-epoch resume)."""
        self.epoch = epoch
        self.start = start

    def identity(self) -> dict[str, int | bool]:
        """What fixes the order of every epoch; a resumed run must see the same."""
        return {"seed": self.seed, "shuffle": self.shuffle, "size": self.size}

    def order(self) -> list[int]:
        if not self.shuffle:
            return list(range(self.size))
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return torch.randperm(self.size, generator=generator).tolist()

    def __iter__(self) -> Iterator[int]:
        return iter(self.order()[self.start :])

    def __len__(self) -> int:
        return self.size - self.start
