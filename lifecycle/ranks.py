"""This process's rank, local rank and the number of processes, read without importing torch.

The process group answers when one is up; else ``torchrun``'s environment (``RANK``, ``LOCAL_RANK``,
``WORLD_SIZE``); else this is the only process. ``TrainingArguments.process_index`` and its kin read
these, as transformers' do.
"""

from __future__ import annotations

import os
import sys
from typing import Any

__all__ = ["local_rank", "rank", "world_size"]


def _group() -> Any:
    """``torch.distributed`` when torch is imported and a process group is up, else None."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    dist = torch.distributed
    return dist if dist.is_available() and dist.is_initialized() else None


def rank() -> int:
    """This process's index among all training processes (0 alone)."""
    dist = _group()
    return int(dist.get_rank()) if dist is not None else int(os.environ.get("RANK", "0"))


def world_size() -> int:
    """How many processes train together (1 alone)."""
    dist = _group()
    if dist is not None:
        return int(dist.get_world_size())
    return int(os.environ.get("WORLD_SIZE", "1"))


def local_rank() -> int:
    """This process's index among the training processes on its machine."""
    return int(os.environ.get("LOCAL_RANK", "0"))
