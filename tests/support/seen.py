"""A classifier that notes which examples it trained on, for tests of how data is shared out."""

from __future__ import annotations

import torch

from tests.support.helpers import Examples


class Indexed(Examples):
    """:class:`Examples` that carry their index."""

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {**super().__getitem__(i), "index": torch.tensor(i)}


class Noting(torch.nn.Module):
    """A classifier that notes, in ``seen``, the index of every example it was trained on."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.linear = torch.nn.Linear(4, 2)
        self.seen: list[int] = []

    def forward(self, x: torch.Tensor, labels: torch.Tensor, index: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.training:
            self.seen.extend(index.tolist())
        return {"loss": torch.nn.functional.cross_entropy(self.linear(x), labels)}
