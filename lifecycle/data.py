"""Resumable sampling: each epoch's order is a pure function of (seed, epoch), so a run can start
mid-epoch by slicing the order, without loading or collating a single skipped example.

With several processes each rank takes every ``world_size``-th index of the same order, the order padded
by wrapping around so that every rank gets as many examples (and takes as many steps) as the others.

A loader without a length (over an iterable dataset) is read as a :class:`Stream`: one long epoch.
A training loader of the user's own resumes mid-epoch in one of two other ways (:func:`resume_method`):
one with ``state_dict``/``load_state_dict`` (torchdata's ``StatefulDataLoader``) is saved and restored;
any other is replayed, its epoch drawn again from the random state the epoch started with.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Sized
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch.utils.data import DataLoader, IterableDataset, Sampler

from lifecycle.rng import RngState, capture_rng, restore_rng
from lifecycle.shards import EvalShards

if TYPE_CHECKING:
    from lifecycle.args import TrainingArguments
    from lifecycle.distributed import Topology

__all__ = [
    "EpochSampler",
    "ResumeMethod",
    "Stream",
    "build_loader",
    "epoch_batches",
    "length",
    "loader_for",
    "resume_method",
]

logger = logging.getLogger(__name__)

ResumeMethod = Literal["sampler", "state_dict", "replay"]


def length(loader: Any) -> int | None:
    """The number of batches in one pass of ``loader``; ``None`` when it cannot tell (iterable data)."""
    try:
        return len(loader)
    except TypeError:
        return None


class Stream:
    """The batches of a loader without a length, pass after pass: one long epoch of ``max_steps``.

    Each time a pass runs out the next begins, with ``dataset.set_epoch(passes)`` first when the
    dataset has it (so that it can reshuffle), as for the first pass.
    """

    def __init__(self, loader: Any, passes: int = 0):
        self.loader = loader
        self.passes = passes
        """Passes completed before the current one."""
        self._batches = self._begin()

    def _begin(self) -> Iterator[Any]:
        set_epoch = getattr(getattr(self.loader, "dataset", None), "set_epoch", None)
        if callable(set_epoch):
            set_epoch(self.passes)
        return iter(self.loader)

    def __iter__(self) -> Stream:
        return self

    def __next__(self) -> Any:
        for _ in range(2):  # the current pass, else a new one
            try:
                return next(self._batches)
            except StopIteration:
                self.passes += 1
                self._batches = self._begin()
        raise ValueError("the training data yields no batch: a whole pass over it was empty")


def resume_method(loader: Any) -> ResumeMethod:
    """How ``loader`` continues mid-epoch: ``sampler`` (an :class:`EpochSampler` slices its order),
    ``state_dict`` (the loader saves and restores its own position) or ``replay`` (the skipped batches
    are drawn again and dropped)."""
    if isinstance(getattr(loader, "sampler", None), EpochSampler):
        return "sampler"
    if callable(getattr(loader, "state_dict", None)) and callable(getattr(loader, "load_state_dict", None)):
        return "state_dict"
    return "replay"


class EpochSampler(Sampler[int]):
    """Indices of one epoch, shuffled by ``seed + epoch`` when ``shuffle``; ``start`` skips ahead."""

    def __init__(self, data: Sized, *, seed: int, shuffle: bool = True, rank: int = 0, world_size: int = 1):
        self.size = len(data)
        self.seed = seed
        self.shuffle = shuffle
        self.rank = rank
        self.world_size = world_size
        self.per_rank = math.ceil(self.size / world_size)
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Select the epoch's order and the first example (of this rank's share) to yield."""
        self.epoch = epoch
        self.start = start

    def identity(self) -> dict[str, int | bool]:
        """What fixes the order of every epoch; a resumed run must see the same."""
        identity: dict[str, int | bool] = {"seed": self.seed, "shuffle": self.shuffle, "size": self.size}
        if self.world_size > 1:
            identity["world_size"] = self.world_size
        return identity

    def order(self) -> list[int]:
        """This rank's indices for the epoch, in order."""
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed + self.epoch)
            everything = torch.randperm(self.size, generator=generator).tolist()
        else:
            everything = list(range(self.size))
        if self.world_size == 1:
            return everything
        total = self.per_rank * self.world_size
        padded = (everything * math.ceil(total / max(self.size, 1)))[:total]
        return padded[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[int]:
        return iter(self.order()[self.start :])

    def __len__(self) -> int:
        return self.per_rank - self.start


def build_loader(
    dataset: Any,
    batch_size: int,
    *,
    collate_fn: Callable[[list[Any]], Any] | None,
    num_workers: int,
    seed: int,
    train: bool,
    drop_last: bool = False,
    rank: int = 0,
    world_size: int = 1,
    pin_memory: bool = False,
) -> DataLoader[Any]:
    """The trainer's own loader: over an :class:`EpochSampler`, shuffled and shared out among the ranks
    for training, in order for evaluation (in one process; several share it out in blocks of batches:
    :class:`~lifecycle.shards.EvalShards`).

    Iterable data is read as it comes (with several ranks, it shares itself out, as PyTorch's
    ``IterableDataset`` docs describe). ``pin_memory`` pins batches for a fast copy to the GPU."""
    if isinstance(dataset, IterableDataset):
        return DataLoader(
            dataset,
            batch_size=batch_size,
            collate_fn=collate_fn,
            num_workers=num_workers,
            pin_memory=pin_memory,
        )
    if not train and world_size > 1:  # each rank evaluates its share (lifecycle.shards)
        return DataLoader(
            dataset,
            batch_sampler=EvalShards(len(dataset), batch_size, rank=rank, world_size=world_size),
            collate_fn=collate_fn,
            num_workers=num_workers,
            pin_memory=pin_memory,
        )
    ranks = {"rank": rank, "world_size": world_size} if train else {}
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=EpochSampler(dataset, seed=seed, shuffle=train, **ranks),
        collate_fn=collate_fn,
        num_workers=num_workers,
        drop_last=drop_last and train,
        pin_memory=pin_memory,
    )


def loader_for(
    dataset: Any,
    batch_size: int,
    collate_fn: Callable[[list[Any]], Any] | None,
    args: TrainingArguments,
    topology: Topology,
    device: torch.device,
    train: bool,
) -> DataLoader[Any]:
    """:func:`build_loader` as the arguments and this process's place among the ranks ask."""
    return build_loader(
        dataset,
        batch_size,
        collate_fn=collate_fn,
        num_workers=args.dataloader_num_workers,
        seed=args.data_seed or args.seed,
        train=train,
        drop_last=args.dataloader_drop_last,
        pin_memory=args.dataloader_pin_memory and device.type == "cuda",
        rank=topology.rank,
        world_size=topology.world_size,
    )


def epoch_batches(
    loader: Any,
    method: ResumeMethod,
    *,
    streaming: bool,
    done: int,
    epoch_rng: RngState | None = None,
    passes: int = 0,
) -> tuple[Iterator[Any], RngState | None]:
    """An epoch's batches from batch ``done`` on, and the random state to save for its replay.

    Resuming (``done > 0``), a replayed loader draws its order again from ``epoch_rng`` (the state the
    epoch began with) and drops the ``done`` batches already trained on; a loader that restored its own
    state goes on in the pass it was in (``passes``). The sampler slices its order itself (the caller
    set its start)."""
    replay = method == "replay"
    if replay and done:
        if epoch_rng is not None:
            restore_rng(epoch_rng)
    elif replay:
        epoch_rng = capture_rng()
    else:
        epoch_rng = None
    batches = Stream(loader, passes if done and not replay else 0) if streaming else iter(loader)
    if replay and done:
        logger.warning(
            "resuming inside an epoch: loading and dropping the %d batches already trained on, as "
            "this training loader has no state_dict (a DataLoader over lifecycle.EpochSampler, the "
            "default, or torchdata's StatefulDataLoader skips them without loading)%s",
            done,
            ""
            if epoch_rng is not None
            else "; the checkpoint lacks the epoch's random state: the order may differ",
        )
        for _ in range(done):
            next(batches)
    return batches, epoch_rng
