"""The evaluation and prediction loop: the model over a loader, the mean loss, predictions and metrics.

The loop knows nothing of the lifecycle: the trainer's ``evaluate`` and ``predict`` states call
:func:`prediction_loop`, passing ``on_batch`` to fire ``prediction_step`` after every batch.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

import torch

from lifecycle.args import TrainingArguments
from lifecycle.forward import autocast, batch_size, logits_of, maybe_loss, to_device
from lifecycle.outputs import EvalPrediction, PredictionOutput

__all__ = ["evaluation_sets", "prediction_loop"]

Metrics = Callable[[EvalPrediction], dict[str, float]]


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


@torch.no_grad()
def prediction_loop(
    model: torch.nn.Module,
    loader: Iterable[Any],
    prefix: str,
    *,
    args: TrainingArguments,
    device: torch.device,
    compute_loss: Callable[..., Any] | None,
    compute_metrics: Metrics | None,
    on_batch: Callable[[], None],
) -> PredictionOutput:
    """Run ``model`` in eval mode over ``loader``; metrics are named ``<prefix>_<name>``.

    ``compute_loss(model, batch, return_outputs=True)``, when given, is the trainer's overridden
    ``compute_loss``, used for batches with labels."""
    was_training = model.training
    model.eval()
    start = time.time()
    losses: list[torch.Tensor] = []
    predictions: list[torch.Tensor] = []
    labels: list[torch.Tensor] = []
    want_outputs = compute_metrics is not None or prefix == "test"
    samples = batches = 0
    for batch in loader:
        batch = to_device(batch, device)
        with autocast(args, device):
            if compute_loss is not None and "labels" in batch:
                loss, outputs = compute_loss(model, batch, return_outputs=True)
            else:
                outputs = model(**batch)
                loss = maybe_loss(outputs)
        size = batch_size(batch)
        samples, batches = samples + size, batches + 1
        if loss is not None:
            losses.append(loss.detach().float() * size)
        logits = logits_of(outputs) if want_outputs else None
        if logits is not None:
            predictions.append(logits)
            if "labels" in batch:
                labels.append(batch["labels"].detach().cpu())
        on_batch()
    model.train(was_training)
    runtime = time.time() - start
    metrics: dict[str, float] = {}
    if losses:
        metrics[f"{prefix}_loss"] = float(torch.stack(losses).sum()) / samples
    preds = torch.cat(predictions).numpy() if predictions else None
    label_ids = torch.cat(labels).numpy() if labels else None
    if compute_metrics is not None and preds is not None:
        for key, value in compute_metrics(EvalPrediction(preds, label_ids)).items():
            metrics[key if key.startswith(f"{prefix}_") else f"{prefix}_{key}"] = value
    metrics[f"{prefix}_runtime"] = round(runtime, 4)
    metrics[f"{prefix}_samples_per_second"] = round(samples / runtime, 3) if runtime else 0.0
    metrics[f"{prefix}_steps_per_second"] = round(batches / runtime, 3) if runtime else 0.0
    return PredictionOutput(preds, label_ids, metrics)
