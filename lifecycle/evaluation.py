"""The evaluation and prediction loop, as transformers runs it: the model over a loader, the loss,
predictions and labels gathered over the batches (:mod:`lifecycle.gather`), and the metrics.

Per batch (:func:`prediction_step`): the labels are the batch's ``label_names``; with all of them present
the trainer's ``compute_loss(model, batch, return_outputs=True)`` gives the loss and the outputs, else the
model runs on the batch as it is. The predictions are the outputs except the loss and the
``ignore_keys``: a dict's values or a tuple's items after the loss, one left standing for itself.

The loop knows nothing of the lifecycle: the trainer's ``evaluate`` and ``predict`` states call
:func:`prediction_loop`, passing ``on_batch`` to fire ``prediction_step`` after every batch.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import attrs
import numpy as np
import torch

from lifecycle.args import TrainingArguments
from lifecycle.forward import Batch, autocast, describe, require_mapping, to_device
from lifecycle.gather import Gathered, detach, find_batch_size
from lifecycle.outputs import EvalPrediction, PredictionOutput
from lifecycle.shards import EvalShards, gather_shards

if TYPE_CHECKING:
    from lifecycle.trainer import Trainer

__all__ = [
    "EvalSetup",
    "can_return_loss",
    "default_ignore_keys",
    "default_label_names",
    "evaluation_sets",
    "prediction_loop",
    "prediction_step",
]

Metrics = Callable[[EvalPrediction], dict[str, Any]]
Preprocess = Callable[[Any, Any], Any]
ComputeLoss = Callable[..., Any]


def evaluation_sets(dataset: Any, prefix: str) -> list[tuple[Any, str]]:
    """``(dataset, metric prefix)`` for each dataset an evaluation covers: one, or each of a dict's,
    named in its prefix (``eval_<name>``)."""
    if dataset is None:
        raise ValueError("evaluation needs an eval_dataset (Trainer(eval_dataset=...) or evaluate(dataset))")
    if not isinstance(dataset, dict):
        return [(dataset, prefix)]
    if not dataset:
        raise ValueError("eval_dataset is an empty dict: name at least one dataset to evaluate on")
    return [(data, f"{prefix}_{name}") for name, data in dataset.items()]


def _forward_arguments(model: torch.nn.Module) -> tuple[type, Mapping[str, inspect.Parameter]]:
    """The model's class (through ``torch.compile``) and the arguments of its ``forward``."""
    cls: Any = type(getattr(model, "_orig_mod", model))
    try:
        return cls, inspect.signature(cls.forward).parameters
    except (TypeError, ValueError):  # a forward without a signature to read
        return cls, {}


def default_label_names(model: torch.nn.Module) -> list[str]:
    """The batch keys that hold labels, as transformers finds them: ``forward``'s arguments whose name
    contains ``label``, and ``start_positions``/``end_positions`` for a question-answering model."""
    cls, names = _forward_arguments(model)
    qa = "QuestionAnswering" in cls.__name__
    return [n for n in names if "label" in n or (qa and n in ("start_positions", "end_positions"))]


def default_ignore_keys(model: torch.nn.Module) -> list[str]:
    """Output keys that are not predictions: the config's ``keys_to_ignore_at_inference`` for a
    transformers model (``past_key_values`` when it names none), nothing for another."""
    if not hasattr(model, "config"):
        return []
    return list(getattr(model.config, "keys_to_ignore_at_inference", ["past_key_values"]))


def can_return_loss(model: torch.nn.Module) -> bool:
    """A model whose ``forward`` has ``return_loss=True`` (CLIP's kind) gives a loss without labels."""
    param = _forward_arguments(model)[1].get("return_loss")
    return param is not None and param.default is True


@attrs.define(kw_only=True)
class EvalSetup:
    """How one evaluation or prediction runs the model and what it keeps of each batch."""

    label_names: list[str]
    """The batch keys that are labels."""
    ignore_keys: list[str]
    """Output keys left out of the predictions."""
    loss_only: bool
    """Keep the loss alone: no predictions, no labels."""
    compute_loss: ComputeLoss
    """``compute_loss(model, batch, return_outputs=True) -> (loss, outputs)``."""
    can_return_loss: bool = False
    """The model gives a loss without labels (its ``forward`` has ``return_loss=True``)."""

    @classmethod
    def of(cls, trainer: Trainer, *, evaluating: bool) -> EvalSetup:
        """A trainer's setup for the call under way: its label names and ``compute_loss``, the call's
        ``ignore_keys``; evaluation gathers no predictions without ``compute_metrics`` (as transformers)."""
        ignore = trainer.call.ignore_keys
        return cls(
            label_names=trainer.label_names,
            ignore_keys=default_ignore_keys(trainer.model) if ignore is None else ignore,
            loss_only=trainer.args.prediction_loss_only or (evaluating and trainer.compute_metrics is None),
            compute_loss=trainer.compute_loss,
            can_return_loss=can_return_loss(trainer.model),
        )


def _predictions(outputs: Any, skip: list[str], after_loss: bool) -> Any:
    """The outputs that are predictions: a dict's values but ``skip``; a tuple's items (after the loss)."""
    if isinstance(outputs, Mapping):
        return tuple(v for k, v in outputs.items() if k not in skip)
    if isinstance(outputs, (tuple, list)):
        return tuple(outputs[1:] if after_loss else outputs)
    if isinstance(outputs, torch.Tensor) and not after_loss:
        return (outputs,)
    raise TypeError(
        f"the model returned {describe(outputs)}: predictions are taken from a dict, a ModelOutput or "
        "a tuple (return one, or set prediction_loss_only=True)"
    )


def prediction_step(model: torch.nn.Module, batch: Batch, setup: EvalSetup) -> tuple[Any, Any, Any]:
    """``(loss, predictions, labels)`` of one batch, each ``None`` when there is none (as transformers'
    ``Trainer.prediction_step``)."""
    names = setup.label_names
    has_labels = bool(names) and all(batch.get(n) is not None for n in names)
    return_loss = batch.get("return_loss")
    if return_loss is None:
        return_loss = setup.can_return_loss
    with_loss = has_labels or (not names and return_loss)
    labels = None
    if with_loss and names:  # taken first: compute_loss may pop them
        picked = detach(tuple(batch.get(n) for n in names))
        labels = picked[0] if len(picked) == 1 else picked
    skip = list(setup.ignore_keys)
    if with_loss:
        loss, outputs = setup.compute_loss(model, batch, return_outputs=True)
        if not isinstance(loss, torch.Tensor):
            raise TypeError(f"compute_loss returned a loss that is {describe(loss)}: return a tensor")
        loss = loss.detach().mean()
        skip.append("loss")
    else:
        loss, outputs = None, model(**batch)
    if setup.loss_only:
        return loss, None, None
    predictions = detach(_predictions(outputs, skip, after_loss=with_loss))
    if not predictions:
        predictions = None
    elif len(predictions) == 1:
        predictions = predictions[0]
    return loss, predictions, labels


@torch.no_grad()
def prediction_loop(
    model: torch.nn.Module,
    loader: Iterable[Any],
    prefix: str,
    *,
    args: TrainingArguments,
    device: torch.device,
    setup: EvalSetup,
    compute_metrics: Metrics | None,
    preprocess_logits: Preprocess | None,
    on_batch: Callable[[], None],
) -> PredictionOutput:
    """Run ``model`` in eval mode over ``loader``; metrics are named ``<prefix>_<name>``.

    Gathered values move to the CPU every ``args.eval_accumulation_steps`` batches (else at the end).
    ``preprocess_logits(predictions, labels)`` reduces each batch's predictions before they are kept.
    ``eval_loss`` is the mean of the batches' losses, each counted once per example of its batch.

    Over a loader of :class:`~lifecycle.shards.EvalShards` (several ranks) each rank runs its share
    and every rank gets the whole set's predictions, labels and metrics, as one process would."""
    was_training = model.training
    model.eval()
    start = time.time()
    losses, predictions, labels, inputs = Gathered(), Gathered(), Gathered(), Gathered()
    gathered = (losses, predictions, labels, inputs)
    extras = args.include_for_metrics
    main_input = getattr(model, "main_input_name", "input_ids")
    every = args.eval_accumulation_steps
    shards = getattr(loader, "batch_sampler", None)
    own = shards.real_batches if isinstance(shards, EvalShards) else None
    samples = batches = 0
    try:
        for step, batch in enumerate(loader):
            require_mapping(batch)
            size = find_batch_size(batch)
            batch = to_device(batch, device)
            with autocast(args, device):
                loss, logits, label = prediction_step(model, batch, setup)
            if own is not None and step >= own:  # run for the other ranks' sake; nothing kept
                on_batch()
                continue
            samples, batches = samples + (size or 0), batches + 1
            if loss is not None:
                losses.add(loss.repeat(size or args.per_device_eval_batch_size))
            if "inputs" in extras:
                inputs.add(batch[main_input])
            if logits is not None:
                if preprocess_logits is not None:
                    logits = preprocess_logits(logits, label)
                predictions.add(logits)
            if label is not None:
                labels.add(label)
            on_batch()
            if every is not None and (step + 1) % every == 0:
                for value in gathered:
                    value.to_cpu()
    finally:
        model.train(was_training)
    results = tuple(value.arrays() for value in gathered)
    if own is not None:  # each rank evaluated its share: the whole set, on every rank
        results, samples = gather_shards(results, samples)
    all_losses, all_predictions, all_labels, all_inputs = results
    metrics: dict[str, Any] = {}
    if compute_metrics is not None and all_predictions is not None and all_labels is not None:
        kept = {
            "inputs": all_inputs if "inputs" in extras else None,
            "losses": all_losses if "loss" in extras else None,
        }
        metrics = _plain(compute_metrics(EvalPrediction(all_predictions, all_labels, **kept)))
    if all_losses is not None:
        finite = np.isfinite(all_losses)
        if args.logging_nan_inf_filter and finite.any():
            all_losses = all_losses[finite]
        metrics[f"{prefix}_loss"] = all_losses.mean().item()
    for key in list(metrics):
        if not key.startswith(f"{prefix}_"):
            metrics[f"{prefix}_{key}"] = metrics.pop(key)
    runtime = time.time() - start
    metrics[f"{prefix}_runtime"] = round(runtime, 4)
    metrics[f"{prefix}_samples_per_second"] = round(samples / runtime, 3) if runtime else 0.0
    metrics[f"{prefix}_steps_per_second"] = round(batches / runtime, 3) if runtime else 0.0
    return PredictionOutput(all_predictions, all_labels, metrics)


def _plain(value: Any) -> Any:
    """Metrics as plain Python: numpy scalars and one-element tensors as numbers, nested alike."""
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, dict):
        return type(value)({k: _plain(v) for k, v in value.items()})
    if isinstance(value, np.generic) or (isinstance(value, torch.Tensor) and value.numel() == 1):
        return value.item()
    return value
