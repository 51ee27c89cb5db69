"""FSDP2: the model sharded with ``torch.distributed.fsdp.fully_shard`` as ``TrainingArguments.fsdp_config``
says (:class:`~lifecycle.fsdp_options.FsdpOptions`).

The layers named by ``transformer_layer_cls_to_wrap`` (default: the model's ``_no_split_modules``), or
the submodules holding ``min_num_params`` parameters (``SIZE_BASED_WRAP``), are sharded as units of
their own, then the whole model; parameters become ``DTensor`` shards in place, so ``trainer.model`` is
the sharded module and the optimizer is built over its shards. ``bf16``/``fp16`` become a
``MixedPrecisionPolicy`` (parameters in that dtype for compute, gradients reduced in float32). FSDP2
needs a process group even in one process: :func:`join_one_rank_group` makes a one-rank one there.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import (
    CPUOffloadPolicy,
    FSDPModule,
    MixedPrecisionPolicy,
    OffloadPolicy,
    fully_shard,
)
from torch.distributed.tensor import DTensor

from lifecycle.args import ArgumentError, TrainingArguments
from lifecycle.fsdp_options import FsdpOptions

if TYPE_CHECKING:
    from lifecycle.run import TrainingRun

__all__ = [
    "clip_grad_norm",
    "fit_run",
    "is_sharded",
    "join_one_rank_group",
    "layers_to_wrap",
    "no_gradient_sync",
    "shard_model",
]


def join_one_rank_group(use_cuda: bool) -> None:
    """A process group of this process alone, when it trains without ``torchrun``'s peers (FSDP2 needs
    one); nothing when a group is up or ``torchrun`` started several processes."""
    if dist.is_initialized() or int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return
    dist.init_process_group("nccl" if use_cuda else "gloo", store=dist.HashStore(), rank=0, world_size=1)


def is_sharded(model: torch.nn.Module) -> bool:
    return isinstance(model, FSDPModule)


def layers_to_wrap(model: torch.nn.Module, options: FsdpOptions) -> list[torch.nn.Module]:
    """The submodules sharded on their own before the whole model, innermost first; a layer class
    name that matches nothing is an :class:`ArgumentError` naming it."""
    if options.auto_wrap_policy == "NO_WRAP":
        return []
    if options.auto_wrap_policy == "SIZE_BASED_WRAP":
        return _by_size(model, options.min_num_params) if options.min_num_params > 0 else []
    names = set(options.transformer_layer_cls_to_wrap or getattr(model, "_no_split_modules", None) or ())
    found = [m for m in model.modules() if m is not model and type(m).__name__ in names]
    missing = names - {type(m).__name__ for m in found}
    if missing and options.transformer_layer_cls_to_wrap:
        raise ArgumentError(
            "TrainingArguments.fsdp_config['transformer_layer_cls_to_wrap']: no "
            f"{', '.join(sorted(missing))} in {type(model).__name__} (its layer classes: "
            f"{', '.join(sorted({type(m).__name__ for m in model.modules() if m is not model}))})"
        )
    return found[::-1]  # modules() lists outer layers first; inner ones are sharded first


def _by_size(model: torch.nn.Module, minimum: int) -> list[torch.nn.Module]:
    """Submodules (innermost first) whose parameters not already in a wrapped submodule reach ``minimum``."""
    wrapped: list[torch.nn.Module] = []
    taken: set[int] = set()

    def visit(module: torch.nn.Module) -> None:
        for child in module.children():
            visit(child)
        if module is model:
            return
        own = [p for p in module.parameters() if id(p) not in taken]
        if sum(p.numel() for p in own) >= minimum:
            wrapped.append(module)
            taken.update(id(p) for p in own)

    visit(model)
    return wrapped


def _mixed_precision(args: TrainingArguments) -> MixedPrecisionPolicy:
    dtype = torch.bfloat16 if args.bf16 else torch.float16 if args.fp16 else None
    return MixedPrecisionPolicy(param_dtype=dtype, reduce_dtype=torch.float32 if dtype is not None else None)


def shard_model(model: torch.nn.Module, args: TrainingArguments, device: torch.device) -> torch.nn.Module:
    """``model`` sharded in place across the process group, as ``args.fsdp_config`` says (once: a
    sharded model is returned as it is)."""
    options = args.fsdp_options
    assert options is not None, "shard_model without fsdp"
    if is_sharded(model):
        return model
    layers = layers_to_wrap(model, options)
    full = _rank0_weights(model) if options.cpu_ram_efficient_loading else None
    if options.activation_checkpointing:
        from torch.distributed._composable import checkpoint

        for layer in layers:
            checkpoint(layer)
    settings: dict[str, Any] = {
        "mesh": init_device_mesh(device.type, (dist.get_world_size(),)),
        "reshard_after_forward": options.reshard_after_forward,
        "mp_policy": _mixed_precision(args),
        "offload_policy": CPUOffloadPolicy(pin_memory=device.type == "cuda")
        if options.cpu_offload
        else OffloadPolicy(),
    }
    for layer in layers:
        fully_shard(layer, **settings)
    fully_shard(model, **settings)
    if full is not None:
        _broadcast_weights(model, full, device)
    return model


def _rank0_weights(model: torch.nn.Module) -> dict[str, Any]:
    """Rank 0's weights, to broadcast once sharded (the other ranks' may be empty, on ``meta``)."""
    if dist.get_rank() != 0:
        return {}
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def _broadcast_weights(model: torch.nn.Module, full: dict[str, Any], device: torch.device) -> None:
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

    if any(p.is_meta for p in model.parameters()):
        model.to_empty(device=device)
    options = StateDictOptions(full_state_dict=True, broadcast_from_rank0=True)
    set_model_state_dict(model, full, options=options)


def clip_grad_norm(parameters: Any, max_norm: float) -> torch.Tensor:
    """``clip_grad_norm_`` over the sharded gradients; the total norm (a replicated ``DTensor``) as a
    plain tensor on this rank."""
    norm = torch.nn.utils.clip_grad_norm_(parameters, max_norm)
    return norm.to_local() if isinstance(norm, DTensor) else norm


def no_gradient_sync(model: torch.nn.Module) -> Callable[[], AbstractContextManager[None]]:
    """A ``no_sync()`` for a sharded model: inside it, backward leaves gradients unreduced (the
    micro-batches of an accumulation window before the last)."""
    assert isinstance(model, FSDPModule)

    @contextmanager
    def no_sync() -> Iterator[None]:
        model.set_requires_gradient_sync(False)
        try:
            yield
        finally:
            model.set_requires_gradient_sync(True)

    return no_sync


def fit_run(
    run: TrainingRun, model: torch.nn.Module, args: TrainingArguments, device: torch.device, several: bool
) -> None:
    """A training run's steps fitted to the sharded ``model``: gradients clipped over the shards, the
    reduce-scatter left to a window's last micro-batch (``several`` ranks), fp16 loss scaling that
    agrees across ranks on an overflow in any shard, and a process group of its own for writing
    checkpoints in the background (``async_save``)."""
    from torch.distributed.fsdp.sharded_grad_scaler import ShardedGradScaler

    options = args.fsdp_options
    assert options is not None, "fit_run without fsdp"
    run.clip = clip_grad_norm
    run.no_sync = no_gradient_sync(model) if several else None
    if run.scaler is not None:
        run.scaler = ShardedGradScaler(device.type)
    if options.async_save:  # its collectives must never interleave with training's
        run.saving_group = dist.new_group(backend="gloo")
