"""Run the same configuration through transformers.Trainer and lifecycle.Trainer and record, for each
callback event, its name, global_step, epoch, max_steps and the five control flags as a callback placed
after DefaultFlowCallback sees them."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from tests.support.helpers import Classifier, Examples


def hf_events() -> list[str]:
    """Every event transformers' TrainerCallback declares (as transition names), except hub pushes."""
    import transformers

    names = [m.removeprefix("on_") for m in dir(transformers.TrainerCallback) if m.startswith("on_")]
    return [n for n in names if n != "push_begin"]


FLAGS = ("should_training_stop", "should_epoch_stop", "should_save", "should_evaluate", "should_log")

Record = tuple[Any, ...]


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

    namespace: dict[str, Any] = {f"on_{e}": make(e) for e in hf_events()}
    namespace["__init__"] = lambda self: setattr(self, "records", [])
    return type("Recorder", (base,), namespace)


def stopper_class(base: type, flag: str, at_step: int, event: str = "step_end") -> type:
    def stop(self: Any, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step == at_step:
            setattr(control, flag, True)

    return type("Stopper", (base,), {f"on_{event}": stop})


def eval_data(case: dict[str, Any]) -> Any:
    """One evaluation dataset, or several by name (``eval_sets``: name -> size)."""
    if "eval_sets" in case:
        return {name: Examples(size, seed=i + 1) for i, (name, size) in enumerate(case["eval_sets"].items())}
    return Examples(case.get("eval_size", 6), seed=1)


def run(library: str, out: Path, case: dict[str, Any], dispatch: str = "generated") -> list[Record]:
    """Train ``case`` with ``library`` ('hf' or 'ours', its lifecycle run the ``dispatch`` way) and return
    what the recorder saw."""
    if library == "hf":
        import transformers as lib

        extra = {"report_to": "none", "use_cpu": True, "disable_tqdm": True, "save_only_model": False}
        build = {}
        from transformers import EarlyStoppingCallback, TrainerCallback
    else:
        import lifecycle as lib  # type: ignore[no-redef]

        extra = {"disable_tqdm": True}
        build = {"dispatch": dispatch}
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
        eval_dataset=eval_data(case),
        compute_metrics=ScriptedMetric(metric) if metric else None,
        callbacks=callbacks,
        **build,
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
