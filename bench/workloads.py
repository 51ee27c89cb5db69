"""The benchmark workloads: a dataset of dict batches and a model whose ``forward(**batch)`` returns the loss.

Every loop in the benchmarks trains the same workload the same way: its dataset, shuffled, in batches of
``batch_size``; SGD (lr 0.01) with a constant ``LambdaLR`` stepped after each optimizer step. Only torch
is imported here, so a peer's process loads nothing of ``lifecycle``.

- ``mlp``: MLP 64 -> 64 -> 1, MSE, 4096 examples, batch 32 (a step of a few hundred µs on one thread);
- ``transformer``: a 2-layer ``nn.TransformerEncoder`` (d_model 64, 4 heads, feed-forward 128, no
  dropout) over 32-token sequences from a 256-token vocabulary, cross-entropy per token, batch 8 (a step
  of a few ms on one thread).
"""

from __future__ import annotations

from collections.abc import Callable

import attrs
import torch

Batch = dict[str, torch.Tensor]


class Regression(torch.utils.data.Dataset[Batch]):
    def __init__(self, n: int):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 64, generator=g)
        self.y = self.x[:, :1] * 0.5 + 0.1 * torch.randn(n, 1, generator=g)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> Batch:
        return {"x": self.x[i], "labels": self.y[i]}


class MLP(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 1))

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> Batch:
        return {"loss": torch.nn.functional.mse_loss(self.net(x), labels)}


VOCAB, SEQ = 256, 32


class Tokens(torch.utils.data.Dataset[Batch]):
    """Random token sequences; each label is a fixed function of its token, so the loss can fall."""

    def __init__(self, n: int):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randint(VOCAB, (n, SEQ), generator=g)
        self.y = (self.x * 7 + 3) % VOCAB

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> Batch:
        return {"x": self.x[i], "labels": self.y[i]}


class Encoder(torch.nn.Module):
    def __init__(self, d_model: int = 64, layers: int = 2) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = torch.nn.Embedding(VOCAB, d_model)
        self.position = torch.nn.Parameter(0.02 * torch.randn(SEQ, d_model))
        layer = torch.nn.TransformerEncoderLayer(
            d_model, nhead=4, dim_feedforward=2 * d_model, dropout=0.0, batch_first=True
        )
        self.encoder = torch.nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = torch.nn.Linear(d_model, VOCAB)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> Batch:
        logits = self.head(self.encoder(self.embed(x) + self.position))
        return {"loss": torch.nn.functional.cross_entropy(logits.flatten(0, 1), labels.flatten())}


@attrs.frozen
class Workload:
    name: str
    description: str
    model: Callable[[], torch.nn.Module]
    data: Callable[[], torch.utils.data.Dataset[Batch]]
    batch_size: int
    default_steps: int


WORKLOADS = {
    "mlp": Workload("mlp", "MLP 64→64→1, batch 32", MLP, lambda: Regression(4096), 32, 3000),
    "transformer": Workload(
        "transformer",
        "2-layer TransformerEncoder (d_model 64, 4 heads, seq 32, vocab 256), batch 8",
        Encoder,
        lambda: Tokens(1024),
        8,
        1000,
    ),
}


def sgd(model: torch.nn.Module) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """The optimizer and schedule every loop uses: SGD, lr 0.01, a constant LambdaLR."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
