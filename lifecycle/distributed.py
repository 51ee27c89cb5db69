"""torch.distributed for the trainer: who this process is, its device, and agreeing across ranks.

Under ``torchrun`` the trainer joins the process group the environment describes (gloo on the CPU,
nccl on CUDA), through a store keyed by the restart attempt (:func:`restart_attempt`): after
``torchrun --max-restarts`` the restarted group never reads the addresses of the attempt before it,
which outlive it in the launcher's store. The stop, log, evaluate and save flags are all-reduced every
time the lifecycle reaches ``boundary``, so a callback that asks for one of them on one rank gets it on
every rank at the same step — no rank is left waiting in a collective for a peer that already quit or
went elsewhere.
"""

from __future__ import annotations

import os
from typing import Any, TypeVar

import attrs
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from lifecycle.control import TrainerControl
from lifecycle.preemption import SignalWatch

T = TypeVar("T")

__all__ = [
    "Topology",
    "agree_on_stop",
    "barrier",
    "gather_everywhere",
    "gather_on_main",
    "join_process_group",
    "mean_over_ranks",
    "pick_device",
    "restart_attempt",
    "wrap_for_training",
]


@attrs.frozen
class Topology:
    """This process's place among the training processes."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    distributed: bool = attrs.field(init=False)
    """More than one process trains (read at every step boundary: a field, not a property)."""

    @distributed.default
    def _several(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def restart_attempt() -> int:
    """How many times ``torchrun`` has restarted this group of workers (0: the first attempt, or no
    ``torchrun``)."""
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))


def join_process_group(use_cuda: bool) -> Topology:
    """The topology ``torchrun`` set up, joining its process group once (single process: no group)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size > 1 and dist.is_available() and not dist.is_initialized():
        backend = "nccl" if use_cuda else "gloo"
        if "TORCHELASTIC_RESTART_COUNT" in os.environ:  # under torchrun: a store of this attempt's own
            store, rank, size = next(dist.rendezvous("env://"))
            attempt = dist.PrefixStore(f"lifecycle/attempt-{restart_attempt()}", store)
            dist.init_process_group(backend=backend, store=attempt, rank=rank, world_size=size)
        else:
            dist.init_process_group(backend=backend)
    if dist.is_available() and dist.is_initialized():
        return Topology(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    return Topology()


def pick_device(topology: Topology, use_cuda: bool, fp16: bool) -> torch.device:
    """This process's device: its local rank's GPU, or the CPU (where fp16 is refused)."""
    if use_cuda:
        device = torch.device("cuda", topology.local_rank)
        torch.cuda.set_device(device)
        return device
    if fp16:
        raise ValueError("TrainingArguments.fp16 needs a CUDA device; use bf16 on the CPU")
    return torch.device("cpu")


def wrap_for_training(model: torch.nn.Module, topology: Topology, device: torch.device) -> torch.nn.Module:
    """DistributedDataParallel across the ranks, or the model itself in one process."""
    if not topology.distributed:
        return model
    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


_AGREED = ("should_training_stop", "should_epoch_stop", "should_log", "should_evaluate", "should_save")
"""The flags every rank must see alike: each leads to a state whose work is collective."""


def agree_on_stop(control: TrainerControl, device: torch.device, signals: SignalWatch | None = None) -> None:
    """Every rank stops (the epoch or the training), logs, evaluates or saves if any rank asked to (a
    callback that asks on one rank alone leaves none waiting in a collective), and every rank learns
    of a stopping signal one of them received. One all-reduce."""
    received = signals.received if signals is not None and signals.received is not None else 0
    values = [*(getattr(control, flag) for flag in _AGREED), received]
    flags = torch.tensor(values, dtype=torch.int32, device=device)
    dist.all_reduce(flags, op=dist.ReduceOp.MAX)
    *agreed, signum = flags.tolist()
    for flag, value in zip(_AGREED, agreed, strict=True):
        setattr(control, flag, bool(value))
    if signals is not None and signum:
        signals.note(signum)


def mean_over_ranks(value: float, device: torch.device) -> float:
    """The mean of a per-rank number over all ranks."""
    total = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(total)
    return float(total) / dist.get_world_size()


def _alone() -> bool:
    return not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1


def gather_everywhere(value: T) -> list[T]:
    """Every rank's ``value``, in rank order, on every rank (``[value]`` alone)."""
    if _alone():
        return [value]
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, value)
    return gathered


def gather_on_main(value: T) -> list[T]:
    """Every rank's ``value``, in rank order, on rank 0 (an empty list elsewhere; ``[value]`` alone)."""
    if _alone():
        return [value]
    main = dist.get_rank() == 0
    gathered: list[Any] | None = [None] * dist.get_world_size() if main else None
    dist.gather_object(value, gathered, dst=0)
    return gathered or []


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
