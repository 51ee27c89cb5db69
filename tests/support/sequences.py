"""A tiny token tagger on sequences of uneven lengths, padded per batch: predictions whose second
dimension differs from batch to batch (and so from rank to rank)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from lifecycle import EvalPrediction


class Sequences(torch.utils.data.Dataset):
    """``n`` sequences of 1 to 6 tokens (4 features each), a token labelled by the sign of its sum."""

    def __init__(self, n: int, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.x = [torch.randn(1 + (7 * i) % 6, 4, generator=g) for i in range(n)]

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, Any]:
        x = self.x[i]
        return {"x": x, "labels": (x.sum(1) > 0).long(), "index": i}


def pad_batch(examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Sequences padded to the batch's longest: features with 0, labels with -100."""
    width = max(len(e["x"]) for e in examples)
    x = torch.zeros(len(examples), width, 4)
    labels = torch.full((len(examples), width), -100)
    for row, e in enumerate(examples):
        x[row, : len(e["x"])] = e["x"]
        labels[row, : len(e["labels"])] = e["labels"]
    return {"x": x, "labels": labels, "index": torch.tensor([e["index"] for e in examples])}


class Tagger(torch.nn.Module):
    """Two logits per token; its predictions are the logits and the examples' indices."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.linear = torch.nn.Linear(4, 2)

    def forward(
        self, x: torch.Tensor, index: torch.Tensor, labels: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        logits = self.linear(x)
        out = {"logits": logits, "index": index}
        if labels is not None:
            out["loss"] = torch.nn.functional.cross_entropy(logits.flatten(0, 1), labels.flatten())
        return {"loss": out.pop("loss"), **out} if "loss" in out else out


def token_metrics(prediction: EvalPrediction) -> dict[str, float]:
    """Token accuracy (padding left out), and how many rows and which examples the metrics saw."""
    logits, index = prediction.predictions
    labels = np.asarray(prediction.label_ids)
    real = labels != -100
    accuracy = float((logits.argmax(-1) == labels)[real].mean())
    return {"accuracy": accuracy, "rows": len(labels), "index_sum": int(np.asarray(index).sum())}
