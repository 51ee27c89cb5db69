"""``lifecycle demo``: a small, complete run that leaves every kind of output on disk.

A three-armed spiral (generated, nothing downloaded) is learned by a small MLP, with an evaluation each
epoch, early stopping on accuracy, the best checkpoints kept, a progress bar, a JSONL metrics log,
TensorBoard events, the lifecycle graph and the run's trace.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import torch

from lifecycle.args import TrainingArguments
from lifecycle.callbacks import EarlyStoppingCallback
from lifecycle.checkpoint import list_checkpoints
from lifecycle.graph import GraphvizNotFound
from lifecycle.outputs import EvalPrediction

__all__ = ["SpiralClassifier", "SpiralDataset", "run_demo"]


class SpiralDataset(torch.utils.data.Dataset[dict[str, torch.Tensor]]):
    """``arms`` interleaved noisy spirals in the plane; the label is the arm."""

    def __init__(self, size: int, *, arms: int = 3, noise: float = 0.2, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        labels = torch.arange(size) % arms
        radius = torch.rand(size, generator=g)
        angle = labels * (2 * math.pi / arms) + radius * 3.0 + noise * torch.randn(size, generator=g)
        self.points = torch.stack([radius * torch.cos(angle), radius * torch.sin(angle)], dim=1)
        self.labels = labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"points": self.points[i], "labels": self.labels[i]}


class SpiralClassifier(torch.nn.Module):
    def __init__(self, arms: int = 3, width: int = 64):
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(2, width),
            torch.nn.ReLU(),
            torch.nn.Dropout(0.05),
            torch.nn.Linear(width, width),
            torch.nn.ReLU(),
            torch.nn.Linear(width, arms),
        )

    def forward(self, points: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        logits = self.net(points)
        out = {"logits": logits}
        if labels is not None:
            out["loss"] = torch.nn.functional.cross_entropy(logits, labels)
        return out


def accuracy(prediction: EvalPrediction) -> dict[str, float]:
    return {"accuracy": float((prediction.predictions.argmax(-1) == prediction.label_ids).mean())}


def run_demo(output_dir: str | Path = "runs/demo", *, epochs: int = 30, progress: bool = True) -> int:
    from lifecycle.trainer import Trainer

    out = Path(output_dir)
    torch.set_num_threads(1)
    args = TrainingArguments(
        output_dir=str(out),
        overwrite_output_dir=True,  # the demo is the same run every time: a new one replaces the last
        num_train_epochs=epochs,
        per_device_train_batch_size=32,
        per_device_eval_batch_size=256,
        learning_rate=3e-3,
        warmup_steps=0.05,
        logging_steps=25,
        eval_strategy="epoch",
        save_strategy="epoch",
        save_total_limit=2,
        load_best_model_at_end=True,
        metric_for_best_model="accuracy",
        report_to=["jsonl", "tensorboard"],
        disable_tqdm=not progress,
        seed=7,
    )
    torch.manual_seed(args.seed)  # the model's initial weights too: the demo is the same run every time
    trainer = Trainer(
        SpiralClassifier(),
        args,
        train_dataset=SpiralDataset(3000, seed=1),
        eval_dataset=SpiralDataset(600, seed=2),
        compute_metrics=accuracy,
        callbacks=[EarlyStoppingCallback(early_stopping_patience=2, early_stopping_threshold=0.001)],
    )
    started = time.perf_counter()
    result = trainer.train()
    elapsed = time.perf_counter() - started
    graph = _write_graph(trainer, out)
    state = trainer.state
    print()
    loss = result.training_loss
    print(f"lifecycle demo: {state.global_step} steps in {elapsed:.1f} s, train loss {loss:.4f}")
    if state.global_step < state.max_steps:
        print(f"  early stopping ended training in epoch {math.ceil(state.epoch or 0)} of {epochs}")
    print(f"  best eval_accuracy {state.best_metric:.4f} at step {state.best_global_step}")
    print(f"  everything is under {out.resolve()}")
    for label, path in _outputs(out, state.best_model_checkpoint, graph):
        print(f"  {label:<18} {path}")
    return 0


def _write_graph(trainer: Any, out: Path) -> Path:
    graph = trainer.lifecycle_graph()
    try:
        return Path(graph.render(out / "lifecycle.svg"))
    except GraphvizNotFound:  # Mermaid text needs nothing
        path = out / "lifecycle.mmd"
        path.write_text(graph.to_mermaid())
        return path


def _outputs(out: Path, best: str | None, graph: Path) -> list[tuple[str, Path]]:
    found = [("checkpoints", p) for p in list_checkpoints(out)]
    if best:
        found.append(("best checkpoint", out / best))
    found += [("metrics log", p) for p in sorted(out.glob("*.jsonl"))]
    found += [("tensorboard", p) for p in sorted((out / "runs").glob("*")) if p.is_dir()]
    found.append(("lifecycle graph", graph))
    if (out / "trace.json").exists():
        found.append(("run trace", out / "trace.json"))
    return found
