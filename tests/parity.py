"""Run the same configuration through transformers.Trainer and lifecycle.Trainer and record, for each
callback event, its name, global_step, epoch, max_steps and the five control flags as a callback placed
after DefaultFlowCallback sees them."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

EVENTS = (
    "init_end",
    "train_begin",
    "train_end",
    "epoch_begin",
    "epoch_end",
    "step_begin",
    "pre_optimizer_step",
    "optimizer_step",
    "substep_end",
    "step_end",
    "evaluate",
    "predict",
    "save",
    "log",
    "prediction_step",
)
FLAGS = ("should_training_stop", "should_epoch_stop", "should_save", "should_evaluate", "should_log")

Record = tuple[Any, ...]


class Examples(torch.utils.data.Dataset):
    def __init__(self, n: int, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 4, generator=g)
        self.y = (self.x.sum(1) > 0).long()

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"x": self.x[i], "labels": self.y[i]}


class Classifier(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(4, 2)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        logits = self.linear(x)
        out = {"logits": logits}
        if labels is not None:
            out["loss"] = torch.nn.functional.cross_entropy(logits, labels)
        return out


class ScriptedMetric:
    """compute_metrics that returns the next value of a fixed script, whatever the model did, so both
    trainers see the same metric trajectory."""

    def __init__(self, values: list[float]):
        self.values = itertools.cycle(values)

    def __call__(self, prediction: Any) -> dict[str, float]:
        return {"score": next(self.values)}


def recorder_class(base: type) -> type:
    """A recording callback deriving from ``base`` (each library's TrainerCallback)."""

    def make(event: str) -> Callable[..., None]:
        def record(self: Any, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            flags = tuple(getattr(control, f) for f in FLAGS)
            self.records.append((event, state.global_step, state.epoch, state.max_steps, *flags))

        return record

    namespace: dict[str, Any] = {f"on_{e}": make(e) for e in EVENTS}
    namespace["__init__"] = lambda self: setattr(self, "records", [])
    return type("Recorder", (base,), namespace)


def stopper_class(base: type, flag: str, at_step: int, event: str = "step_end") -> type:
    def stop(self: Any, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step == at_step:
            setattr(control, flag, True)

    return type("Stopper", (base,), {f"on_{event}": stop})


def run(library: str, out: Path, case: dict[str, Any]) -> list[Record]:
    """Train ``case`` with ``library`` ('hf' or 'ours') and return what the recorder saw."""
    if library == "hf":
        import transformers as lib

        extra = {"report_to": "none", "use_cpu": True, "disable_tqdm": True, "save_only_model": False}
        from transformers import EarlyStoppingCallback, TrainerCallback
    else:
        import lifecycle as lib  # type: ignore[no-redef]

        extra = {"disable_tqdm": True}
        from lifecycle import EarlyStoppingCallback, TrainerCallback  # type: ignore[assignment]

    torch.manual_seed(0)
    recorder = recorder_class(TrainerCallback)()
    callbacks: list[Any] = []
    if "stop" in case:
        callbacks.append(stopper_class(TrainerCallback, *case["stop"])())
    if "early_stopping" in case:
        callbacks.append(EarlyStoppingCallback(*case["early_stopping"]))
    callbacks.append(recorder)
    args = lib.TrainingArguments(
        output_dir=str(out),
        per_device_train_batch_size=4,
        per_device_eval_batch_size=4,
        **extra,
        **case.get("args", {}),
    )
    metric = case.get("metric")
    trainer = lib.Trainer(
        model=Classifier(),
        args=args,
        train_dataset=Examples(case.get("size", 16)),
        eval_dataset=Examples(case.get("eval_size", 6), seed=1),
        compute_metrics=ScriptedMetric(metric) if metric else None,
        callbacks=callbacks,
    )
    trainer.train()
    for call in case.get("after", ()):
        if call == "evaluate":
            trainer.evaluate()
        else:
            trainer.predict(Examples(5, seed=2))
    return [
        (name, step, None if epoch is None else round(epoch, 9), *rest)
        for name, step, epoch, *rest in recorder.records
    ]
