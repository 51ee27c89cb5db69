"""Small real models and datasets shared by the tests."""

from __future__ import annotations

from typing import Any

import torch

from lifecycle import TrainerCallback
from lifecycle.callbacks.base import HF_EVENTS


class Examples(torch.utils.data.Dataset):
    """A linearly separable two-class problem: ``n`` random vectors labelled by the sign of their sum."""

    def __init__(self, n: int, seed: int = 0, features: int = 4):
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, features, generator=g)
        self.y = (self.x.sum(1) > 0).long()

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"x": self.x[i], "labels": self.y[i]}


class Classifier(torch.nn.Module):
    """A linear classifier whose ``forward(**batch)`` returns ``logits`` and, given labels, ``loss``."""

    def __init__(self, seed: int = 0, features: int = 4) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.linear = torch.nn.Linear(features, 2)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        logits = self.linear(x)
        out = {"logits": logits}
        if labels is not None:
            out["loss"] = torch.nn.functional.cross_entropy(logits, labels)
        return out


class Recorder(TrainerCallback):
    """Records every Hugging Face event as (name, global_step)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, int]] = []


def _recording(event: str) -> Any:
    def record(self: Recorder, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.events.append((event, state.global_step))

    return record


for _event in HF_EVENTS:
    setattr(Recorder, f"on_{_event}", _recording(_event))
