"""What train(), evaluate() and predict() hand back, with Hugging Face's names."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

__all__ = ["EvalPrediction", "PredictionOutput", "TrainOutput"]


class EvalPrediction:
    """Given to ``compute_metrics``: the model's predictions and the labels, as numpy arrays (or nested
    tuples/dicts of them), with the inputs and the losses when ``include_for_metrics`` asks for them.

    As in transformers it unpacks as ``predictions, label_ids`` (then ``inputs``, ``losses`` if present).
    """

    def __init__(self, predictions: Any, label_ids: Any, inputs: Any = None, losses: Any = None):
        self.predictions = predictions
        self.label_ids = label_ids
        self.inputs = inputs
        self.losses = losses
        self.elements: tuple[Any, ...] = (predictions, label_ids)
        if inputs is not None:
            self.elements += (inputs,)
        if losses is not None:
            self.elements += (losses,)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.elements)

    def __getitem__(self, index: int) -> Any:
        if index < 0 or index >= len(self.elements):
            raise IndexError("tuple index out of range")
        return self.elements[index]

    def __len__(self) -> int:
        return len(self.elements)

    def __repr__(self) -> str:
        return f"EvalPrediction(predictions={self.predictions!r}, label_ids={self.label_ids!r})"


class PredictionOutput(NamedTuple):
    predictions: Any
    label_ids: Any
    metrics: dict[str, float]


class TrainOutput(NamedTuple):
    global_step: int
    training_loss: float
    metrics: dict[str, float]
