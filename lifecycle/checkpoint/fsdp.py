"""An FSDP2 model and its optimizer in a checkpoint, as ``fsdp_config["state_dict_type"]`` says.

``FULL_STATE_DICT``: every rank helps gather the full weights and optimizer state onto rank 0's CPU,
which writes them as a DDP run would (``model.safetensors``, ``optimizer.*`` keyed by parameter name).

``SHARDED_STATE_DICT``: each rank writes its own shards of the weights and of the optimizer state
through ``torch.distributed.checkpoint`` into ``shards/`` (safetensors, each file's place in the full
tensors in its header: no pickle), and rank 0 the optimizer's parameter groups (``optimizer.json``).
Each rank hashes a share of the shard files for the manifest. Loading reshards: a checkpoint written
by N ranks resumes on M. With ``async_save``, the shards are written in the background; the checkpoint
is sealed (manifest, rename into place) only once every rank's writing is done.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint import HuggingFaceStorageReader, HuggingFaceStorageWriter
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_state_dict,
    set_model_state_dict,
    set_state_dict,
)

from lifecycle import distributed
from lifecycle.checkpoint import tree
from lifecycle.checkpoint.contents import OPTIMIZER, save_weights
from lifecycle.checkpoint.folder import SHARDS_DIR, WEIGHTS_FILE, CheckpointError, file_entry, first_line

__all__ = [
    "ShardWriting",
    "full_weights",
    "gather_full",
    "load_full",
    "load_shards",
    "save_full",
    "start_shards",
]

_FULL = StateDictOptions(full_state_dict=True, cpu_offload=True)
Manifest = dict[str, dict[str, Any]]


# -- FULL_STATE_DICT -----------------------------------------------------------------------------
def full_weights(model: torch.nn.Module) -> dict[str, Any]:
    """The full weights, gathered onto rank 0's CPU (empty on the other ranks); every rank calls it."""
    return get_model_state_dict(model, options=_FULL)


def gather_full(model: torch.nn.Module, optimizer: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Full weights and optimizer state on rank 0's CPU (keyed by parameter name); every rank calls it."""
    return get_state_dict(model, optimizer, options=_FULL)


def save_full(into: Path, weights: dict[str, Any], optimizer_state: dict[str, Any]) -> None:
    """Rank 0: what :func:`gather_full` gathered, as ``model.safetensors`` and ``optimizer.*``."""
    save_weights(into, None, weights)
    tree.save_tree(into, OPTIMIZER, optimizer_state)


def load_full(path: Path, model: torch.nn.Module, optimizer: Any) -> None:
    """Each rank reads the full weights (and optimizer state, when ``optimizer`` is given) and keeps
    its shards."""
    from safetensors.torch import load_file

    try:
        weights: dict[str, Any] = load_file(str(path / WEIGHTS_FILE))
    except (OSError, RuntimeError) as exc:
        raise CheckpointError(f"{path / WEIGHTS_FILE}: {exc}") from None
    options = StateDictOptions(full_state_dict=True)
    try:
        if optimizer is None:
            set_model_state_dict(model, weights, options=options)
        else:
            saved = tree.load_tree(path, OPTIMIZER)
            set_state_dict(
                model, optimizer, model_state_dict=weights, optim_state_dict=saved, options=options
            )
    except (KeyError, RuntimeError, ValueError) as exc:
        raise CheckpointError(
            f"{path}: the weights or optimizer state do not fit this model ({exc})"
        ) from None


# -- SHARDED_STATE_DICT --------------------------------------------------------------------------
class ShardWriting:
    """Every rank's shards on their way into a staged checkpoint folder; :meth:`finish` waits for
    them and returns the manifest entries of the shard files."""

    def __init__(self, folder: Path, pending: Any) -> None:
        self.folder, self._pending = folder, pending

    def finish(self) -> Manifest:
        """Wait for this rank's writing, then hash this rank's share of the files; rank 0 receives
        every entry (the other ranks: an empty dict). Every rank calls it."""
        if self._pending is not None:
            self._pending.result()
        distributed.barrier()  # every rank's files are whole
        files = sorted((self.folder / SHARDS_DIR).iterdir())
        share = files[dist.get_rank() :: dist.get_world_size()]
        mine = {f"{SHARDS_DIR}/{p.name}": file_entry(p) for p in share}
        return {name: entry for part in distributed.gather_on_main(mine) for name, entry in part.items()}


def start_shards(
    folder: Path | None, model: torch.nn.Module, optimizer: Any, group: Any = None
) -> tuple[ShardWriting, list[dict[str, Any]]]:
    """Every rank writes its shards into rank 0's staged ``folder`` (``None`` on the other ranks) —
    in the background when ``group`` (a process group of its own for the writing) is given. Returns
    the writing and the optimizer's parameter groups, for rank 0 to write."""
    shared = [str(folder) if folder is not None else None]
    dist.broadcast_object_list(shared, src=0)
    assert shared[0] is not None
    staged = Path(shared[0])
    weights, optimizer_state = get_state_dict(model, optimizer)
    state = {"model": weights, "optimizer": optimizer_state["state"]}
    writer = HuggingFaceStorageWriter(str(staged / SHARDS_DIR), save_distributed=True)
    if group is None:
        dcp.save(state, storage_writer=writer)
        pending = None
    else:  # the state is copied to CPU memory before this returns; training may change it after
        pending = dcp.async_save(state, storage_writer=writer, process_group=group)
    groups: list[dict[str, Any]] = optimizer_state["param_groups"]  # type: ignore[assignment]
    return ShardWriting(staged, pending), groups


def load_shards(path: Path, model: torch.nn.Module, optimizer: Any) -> None:
    """Every rank reads its shards of the weights (and of the optimizer state, when ``optimizer`` is
    given) from ``path/shards``, whatever the number of ranks that wrote them."""
    weights, optimizer_state = get_state_dict(model, optimizer) if optimizer is not None else (
        get_model_state_dict(model), None)  # fmt: skip
    state: dict[str, Any] = {"model": weights}
    if optimizer_state is not None:
        state["optimizer"] = optimizer_state["state"]
    try:
        dcp.load(state, storage_reader=HuggingFaceStorageReader(str(path / SHARDS_DIR)))
    except Exception as exc:  # DCP wraps each rank's failure in its own exception type
        raise CheckpointError(f"{path / SHARDS_DIR}: does not fit this model ({first_line(exc)})") from None
    if optimizer_state is None:
        set_model_state_dict(model, weights)
        return
    groups = tree.load_tree(path, OPTIMIZER).get("param_groups")
    if not isinstance(groups, list):
        raise CheckpointError(f"{path / tree.json_file(OPTIMIZER)}: no param_groups list")
    optimizer_state = {"state": state["optimizer"], "param_groups": groups}
    set_state_dict(model, optimizer, model_state_dict=weights, optim_state_dict=optimizer_state)
