"""Label smoothing (``label_smoothing_factor``), as transformers' ``LabelSmoother``.

The loss of a batch is ``(1 - epsilon) * nll + epsilon * u``: ``nll`` the mean negative log-likelihood of
the labels and ``u`` the mean over classes of the negative log-probabilities, both over the positions
whose label is not ``-100``. A causal language model of transformers' predicts the next token: its
labels are shifted by one, as transformers does. Only the trainer's own ``compute_loss`` smooths (an
override smooths when it calls ``super().compute_loss``).
"""

from __future__ import annotations

import sys
import warnings
from typing import Any

import torch

from lifecycle.args import TrainingArguments
from lifecycle.forward import Batch

__all__ = ["LabelSmoother", "label_smoother", "shifts_labels"]

IGNORE_INDEX = -100


def shifts_labels(model: torch.nn.Module) -> bool:
    """transformers' rule: a model of one of its causal language-model classes predicts the next token."""
    if "transformers" not in sys.modules:  # a model of transformers' has imported it
        return False
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    return type(model).__name__ in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values()


class LabelSmoother:
    """The smoothed loss of a model's ``logits`` against ``labels``."""

    def __init__(self, epsilon: float, ignore_index: int = IGNORE_INDEX, shift_labels: bool = False):
        self.epsilon = epsilon
        self.ignore_index = ignore_index
        self.shift_labels = shift_labels

    def __call__(self, outputs: Any, labels: torch.Tensor, shift_labels: bool | None = None) -> torch.Tensor:
        logits = outputs["logits"] if isinstance(outputs, dict) else getattr(outputs, "logits", None)
        if logits is None:
            logits = outputs[0]
        if self.shift_labels if shift_labels is None else shift_labels:
            logits, labels = logits[..., :-1, :], labels[..., 1:]
        return torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]).float(),
            labels.reshape(-1),
            ignore_index=self.ignore_index,
            label_smoothing=self.epsilon,
        )

    def compute_loss(self, model: torch.nn.Module, inputs: Batch, return_outputs: bool = False) -> Any:
        """The model on ``inputs`` without their ``labels``, and its smoothed loss against them."""
        outputs = model(**{k: v for k, v in inputs.items() if k != "labels"})
        loss = self(outputs, inputs["labels"])
        return (loss, outputs) if return_outputs else loss


def label_smoother(model: torch.nn.Module, args: TrainingArguments) -> LabelSmoother | None:
    """The smoother ``label_smoothing_factor`` asks for (``None`` at 0); as in transformers, none for a
    multi-label classifier (with a warning)."""
    if args.label_smoothing_factor == 0:
        return None
    if getattr(getattr(model, "config", None), "problem_type", None) == "multi_label_classification":
        warnings.warn(
            "label_smoothing_factor is ignored: label smoothing does not apply to multi-label classification",
            UserWarning,
            stacklevel=3,
        )
        return None
    return LabelSmoother(args.label_smoothing_factor, shift_labels=shifts_labels(model))
