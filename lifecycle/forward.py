"""Calling the model on a batch: the device move, mixed precision, and the loss and logits of its outputs.

A batch is a dict; the model's ``forward(**batch)`` returns a dict (or an object such as transformers'
``ModelOutput``) with ``loss`` when the batch has labels, and ``logits``.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch

from lifecycle.args import TrainingArguments

__all__ = [
    "Batch",
    "LossFn",
    "autocast",
    "batch_size",
    "logits_of",
    "loss_of",
    "make_forward",
    "maybe_loss",
    "to_device",
]

Batch = dict[str, Any]
LossFn = Callable[[Batch], torch.Tensor]


def to_device(batch: Batch, device: torch.device) -> Batch:
    """The batch's tensors on ``device`` (the batch itself on the CPU)."""
    if device.type == "cpu":
        return batch
    return {
        k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()
    }


def autocast(args: TrainingArguments, device: torch.device) -> AbstractContextManager[Any]:
    """Mixed precision as the arguments ask (bf16 or fp16 autocast), else nothing."""
    dtype = torch.bfloat16 if args.bf16 else torch.float16 if args.fp16 else None
    return nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)


def maybe_loss(outputs: Any) -> torch.Tensor | None:
    """The ``loss`` of the model's outputs, or ``None``."""
    if isinstance(outputs, dict):
        return outputs.get("loss")
    return getattr(outputs, "loss", None)


def loss_of(outputs: Any) -> torch.Tensor:
    """The ``loss`` of the model's outputs; an error that says how to get one if there is none."""
    loss = maybe_loss(outputs)
    if loss is None:
        raise ValueError(
            "the model's forward(**batch) must return a dict with a 'loss' (give the batch 'labels')"
        )
    return loss


def logits_of(outputs: Any) -> torch.Tensor | None:
    """The ``logits`` of the model's outputs, detached, as float32 on the CPU (``None`` if absent)."""
    logits = outputs.get("logits") if isinstance(outputs, dict) else getattr(outputs, "logits", None)
    return None if logits is None else logits.detach().float().cpu()


def batch_size(batch: Batch) -> int:
    """The number of examples in a batch: the first dimension of its first tensor."""
    for value in batch.values():
        if isinstance(value, torch.Tensor) and value.ndim > 0:
            return int(value.shape[0])
    return 1


def make_forward(
    model: torch.nn.Module,
    args: TrainingArguments,
    device: torch.device,
    compute_loss: Callable[..., Any] | None = None,
) -> LossFn:
    """``batch -> loss`` for one run, built once: device moves and autocast only where they are needed.

    ``compute_loss(model, batch)``, when given, is the trainer's overridden ``compute_loss``."""
    move = None if device.type == "cpu" else device

    if compute_loss is not None:
        owner = getattr(compute_loss, "__self__", None)

        def plain(batch: Batch) -> torch.Tensor:
            loss = compute_loss(model, batch if move is None else to_device(batch, move))
            if not isinstance(loss, torch.Tensor):
                raise TypeError(
                    f"{type(owner).__name__}.compute_loss returned {type(loss).__name__}: "
                    "return the loss as a tensor"
                )
            return loss

    else:

        def plain(batch: Batch) -> torch.Tensor:
            outputs = model(**(batch if move is None else to_device(batch, move)))
            loss = outputs.get("loss") if type(outputs) is dict else None
            return loss if loss is not None else loss_of(outputs)

    if not (args.bf16 or args.fp16):
        return plain

    def mixed(batch: Batch) -> torch.Tensor:
        with autocast(args, device):
            return plain(batch)

    return mixed
