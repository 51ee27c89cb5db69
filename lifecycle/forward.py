"""Calling the model on a batch: the device move, mixed precision, and the loss of its outputs.

A batch is a dict (any mapping); the model's ``forward(**batch)`` returns, when the batch has its labels,
a dict or transformers' ``ModelOutput`` with a ``loss``, or a tuple whose first item is the loss.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch

from lifecycle.args import TrainingArguments

__all__ = [
    "Batch",
    "LossFn",
    "autocast",
    "describe",
    "first_checked",
    "loss_of",
    "make_forward",
    "require_mapping",
    "to_device",
]

Batch = Mapping[str, Any]
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


def describe(value: Any) -> str:
    """A few words on what ``value`` is, for error messages: ``a tensor of shape (4, 2)``, ``a float``."""
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    return f"a {type(value).__name__}"


def require_mapping(batch: Any) -> None:
    """Refuse a batch that is not a dict (or another mapping), saying what came and how to fix it."""
    if isinstance(batch, Mapping):
        return
    if isinstance(batch, (tuple, list)):
        kinds = {"tensor" if isinstance(v, torch.Tensor) else type(v).__name__ for v in batch}
        kind = f"{kinds.pop()}s" if len(kinds) == 1 else "items"
        what = f"a {type(batch).__name__} of {len(batch)} {kind}"
    else:
        what = describe(batch)
    raise TypeError(
        f"a batch is {what}, but the model is called as model(**batch): a batch must be a dict of the "
        "model's argument names. Give Trainer(data_collator=...) that returns one, e.g. data_collator="
        'lambda rows: {"x": torch.stack([r[0] for r in rows]), "labels": torch.stack([r[1] for r in rows])}, '
        "or make the dataset's items dicts (a TensorDataset's are tuples)"
    )


def _output_keys(outputs: Any) -> str:
    if isinstance(outputs, Mapping):
        return f"a {type(outputs).__name__} with keys {list(outputs)}"
    return describe(outputs)


def loss_of(outputs: Any, batch: Batch | None = None) -> torch.Tensor:
    """The loss of the model's outputs, as transformers takes it: ``outputs["loss"]`` from a dict (or a
    ``ModelOutput``), the first item of a tuple, else a ``loss`` attribute; an error that says what the
    outputs and the batch held if there is none."""
    if isinstance(outputs, Mapping):
        loss = outputs.get("loss")
    elif isinstance(outputs, (tuple, list)):
        loss = outputs[0] if outputs else None
        if isinstance(loss, torch.Tensor) and loss.numel() == 1:
            return loss
        if outputs:
            raise ValueError(
                f"the model returned a {type(outputs).__name__} whose first item is {describe(loss)}, "
                "not a loss: a model that returns a tuple puts its loss (one value) first, as transformers "
                f"models do when given their labels; the batch had keys {_keys(batch)}"
            )
    else:
        loss = getattr(outputs, "loss", None)
    if loss is not None:
        return loss
    raise ValueError(
        f"the model's output has no 'loss': forward(**batch) returned {_output_keys(outputs)}, from a "
        f"batch with keys {_keys(batch)}. A model computes its loss from the batch (a transformers model "
        "when the batch has its labels, 'labels' for most); or override Trainer.compute_loss"
    )


def _keys(batch: Batch | None) -> str:
    return "(not known)" if batch is None else str(list(batch))


def first_checked(forward: LossFn, run: Any) -> LossFn:
    """``forward`` for a run's first batch: the batch refused unless a mapping (:func:`require_mapping`),
    then ``run.forward`` set back to ``forward`` itself, so the later steps pay nothing for the check."""

    def first(batch: Batch) -> torch.Tensor:
        require_mapping(batch)
        run.forward = forward
        return forward(batch)

    return first


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
            return loss if loss is not None else loss_of(outputs, batch)

    if not (args.bf16 or args.fp16):
        return plain

    def mixed(batch: Batch) -> torch.Tensor:
        with autocast(args, device):
            return plain(batch)

    return mixed
