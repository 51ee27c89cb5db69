"""The model as trained: activation (gradient) checkpointing and ``torch.compile``, as the arguments ask.

Checkpointing is the model's own: ``activation_checkpointing_enable`` (transformers 5) or
``gradient_checkpointing_enable`` (transformers 4 and models written after them), given
``activation_checkpointing_kwargs``; ``every_n_layers`` and ``offload`` in them go to the method as
keywords of their own, the others on to ``torch.utils.checkpoint``. Compiling wraps the model the
trainer trains (``trainer.model_wrapped``); evaluation, saving and ``trainer.model`` keep the module.
"""

from __future__ import annotations

import importlib

import torch

from lifecycle import distributed
from lifecycle.args import ArgumentError, TrainingArguments

__all__ = [
    "check_fsdp",
    "compile_for_training",
    "enable_checkpointing",
    "prepare_model",
]

_OWN_KEYWORDS = ("every_n_layers", "offload")


def enable_checkpointing(model: torch.nn.Module, args: TrainingArguments) -> None:
    """Turn on the model's activation checkpointing when ``activation_checkpointing`` (alias
    ``gradient_checkpointing``) is set; a model without the method is an error."""
    if not args.activation_checkpointing:
        return
    options = dict(args.activation_checkpointing_kwargs or {})
    own = {k: options.pop(k) for k in _OWN_KEYWORDS if k in options}
    enable = getattr(model, "activation_checkpointing_enable", None)
    if callable(enable):
        enable(activation_checkpointing_kwargs=options or None, **own)
        return
    enable = getattr(model, "gradient_checkpointing_enable", None)
    if callable(enable):
        enable(gradient_checkpointing_kwargs=options or None, **own)
    else:
        raise ArgumentError(
            f"TrainingArguments.gradient_checkpointing: {type(model).__name__} has no "
            "gradient_checkpointing_enable() (nor activation_checkpointing_enable()) to turn it on; "
            "apply torch.utils.checkpoint in its forward instead"
        )


def compile_for_training(model: torch.nn.Module, args: TrainingArguments) -> torch.nn.Module:
    """``torch.compile(model)`` with the arguments' backend and mode if ``torch_compile``, else ``model``."""
    if not args.torch_compile:
        return model
    compiled: torch.nn.Module = torch.compile(  # type: ignore[assignment]
        model, backend=args.torch_compile_backend or "inductor", mode=args.torch_compile_mode
    )
    return compiled


def prepare_model(
    model: torch.nn.Module, args: TrainingArguments, topology: distributed.Topology, device: torch.device
) -> torch.nn.Module:
    """The model as trained (``trainer.model_wrapped``): checkpointing turned on, sharded in place with
    FSDP2 when ``args.fsdp`` (:mod:`lifecycle.fsdp`), else wrapped in DistributedDataParallel across
    several processes; compiled when asked."""
    enable_checkpointing(model, args)
    if args.fsdp:
        from lifecycle.fsdp import shard_model

        return compile_for_training(shard_model(model, args, device), args)
    return compile_for_training(distributed.wrap_for_training(model, topology, device), args)


def check_fsdp(optimizer: torch.optim.Optimizer | None) -> None:
    """Before any work under FSDP: this torch has FSDP2 and the safetensors writer of
    ``torch.distributed.checkpoint``, and no optimizer was given to the Trainer (it would hold the
    parameters that sharding replaces)."""
    if optimizer is not None:
        raise ArgumentError(
            "Trainer(optimizers=(optimizer, ...)) with TrainingArguments.fsdp: FSDP2 replaces the model's "
            "parameters with their shards, so an optimizer built before holds the wrong ones; choose it "
            "with TrainingArguments.optim (and optim_args) instead"
        )
    try:
        for module in ("lifecycle.fsdp", "lifecycle.checkpoint.fsdp"):
            importlib.import_module(module)
    except ImportError as exc:
        raise ArgumentError(
            "TrainingArguments.fsdp: FSDP2 needs a torch with torch.distributed.fsdp.fully_shard and "
            f"torch.distributed.checkpoint's HuggingFaceStorageWriter (this is torch {torch.__version__}: "
            f"{exc})"
        ) from None
