"""What train(), evaluate() and predict() hand back, with Hugging Face's names."""

from __future__ import annotations

from typing import Any, NamedTuple

__all__ = ["EvalPrediction", "PredictionOutput", "TrainOutput"]


class EvalPrediction(NamedTuple):
    """Given to ``compute_metrics``: the model's predictions and the labels, as numpy arrays."""

    predictions: Any
    label_ids: Any


class PredictionOutput(NamedTuple):
    predictions: Any
    label_ids: Any
    metrics: dict[str, float]


class TrainOutput(NamedTuple):
    global_step: int
    training_loss: float
    metrics: dict[str, float]
