"""How long a resume takes to reach its first training step, late in an epoch versus early.

The dataset's ``__getitem__`` is deliberately slow (``--delay`` seconds per example). A resume that
skipped batches by loading them would take about 90 times longer at 90 % of the epoch than at 1 %;
the epoch order is sliced instead, so the two should cost the same (goal: ratio <= 1.1)::

    PYTHONPATH=. python bench/bench_resume.py
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from lifecycle import PrinterCallback, TrainerCallback, TrainingArguments
from lifecycle.trainer import Trainer


class SlowSet(torch.utils.data.Dataset[dict[str, torch.Tensor]]):
    def __init__(self, n: int, delay: float):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 16, generator=g)
        self.y = (self.x.sum(1) > 0).long()
        self.delay = delay
        self.loaded = 0

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        time.sleep(self.delay)
        self.loaded += 1
        return {"x": self.x[i], "labels": self.y[i]}


class Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(16, 2)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"loss": torch.nn.functional.cross_entropy(self.linear(x), labels)}


class SaveAt(TrainerCallback):
    def __init__(self, steps: set[int]):
        self.steps = steps

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        control.should_save = state.global_step in self.steps


class FirstStep(TrainerCallback):
    """Notes when the first step after the resume is done, then ends training."""

    def __init__(self) -> None:
        self.at = 0.0

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not self.at:
            self.at = time.perf_counter()
        control.should_training_stop = True


def make(output_dir: Path, data: SlowSet, *callbacks: TrainerCallback) -> Trainer:
    args = TrainingArguments(
        output_dir=str(output_dir),
        num_train_epochs=1,
        per_device_train_batch_size=8,
        save_strategy="no",
        logging_steps=10**6,
        disable_tqdm=True,
    )
    trainer = Trainer(Net(), args, train_dataset=data, callbacks=list(callbacks))
    trainer.remove_callback(PrinterCallback)  # nothing to show
    return trainer


def time_to_first_step(output_dir: Path, data: SlowSet, step: int) -> tuple[float, int]:
    first = FirstStep()
    trainer = make(output_dir, data, first)
    data.loaded = 0
    start = time.perf_counter()
    trainer.train(resume_from_checkpoint=output_dir / f"checkpoint-{step}")
    return first.at - start, data.loaded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=4000)
    parser.add_argument("--delay", type=float, default=0.0005, help="seconds per __getitem__")
    parser.add_argument("--repeats", type=int, default=5)
    ns = parser.parse_args()
    logging.disable(logging.WARNING)
    torch.set_num_threads(1)
    steps_per_epoch = ns.examples // 8
    early, late = max(1, steps_per_epoch // 100), steps_per_epoch * 9 // 10
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        data = SlowSet(ns.examples, ns.delay)
        t0 = time.perf_counter()
        make(out, data, SaveAt({early, late})).train()
        spent = time.perf_counter() - t0
        print(f"one epoch of {steps_per_epoch} steps: {spent:.2f} s (checkpoints at {early}, {late})")
        results: dict[int, list[float]] = {early: [], late: []}
        loaded: dict[int, int] = {}
        for _ in range(ns.repeats):
            for step in (early, late):
                seconds, loaded[step] = time_to_first_step(out, data, step)
                results[step].append(seconds)
        start = time.perf_counter()
        for _ in zip(range(late), torch.utils.data.DataLoader(data, batch_size=8), strict=False):
            pass
        skipping = time.perf_counter() - start
    a, b = statistics.median(results[early]), statistics.median(results[late])
    for label, step, seconds in (("1 %", early, a), ("90 %", late, b)):
        print(f"resume at {label:>4} (step {step:>4}): {seconds * 1000:7.1f} ms to the first step, ", end="")
        print(f"{loaded[step]} examples loaded")
    print(f"ratio 90 % / 1 %: {b / a:.3f}  (goal <= 1.1)")
    print(f"for scale, loading the {late} skipped batches instead would take {skipping * 1000:.0f} ms")


if __name__ == "__main__":
    main()
