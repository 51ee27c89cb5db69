"""Learning-rate schedules by name: every curve, step by step, against transformers' ``get_scheduler``;
the schedules that step on the evaluation metric against transformers' on the same metrics; and the
trainer's logged learning rates against transformers' Trainer."""

from __future__ import annotations

import functools
import inspect
import math
from pathlib import Path
from typing import Any

import pytest
import torch

from lifecycle import ArgumentError, TrainingArguments
from lifecycle.greedy import GreedyLR
from lifecycle.optim import create_scheduler
from lifecycle.schedules import GREEDY_OPTIONS, PLATEAU_OPTIONS, SCHEDULES
from lifecycle.trainer import Trainer
from tests.support.helpers import Classifier, Examples
from tests.support.parity import ScriptedMetric

transformers = pytest.importorskip("transformers")
from transformers.optimization import GreedyLR as HFGreedyLR  # noqa: E402

TOTAL = 50
LR = 0.1

CURVES: list[tuple[str, dict[str, Any]]] = [
    ("linear", {}),
    ("cosine", {}),
    ("cosine", {"num_cycles": 1.5}),
    ("cosine_with_restarts", {}),
    ("cosine_with_restarts", {"num_cycles": 3}),
    ("polynomial", {}),
    ("polynomial", {"lr_end": 1e-3, "power": 2.0}),
    ("constant", {}),
    ("constant_with_warmup", {}),
    ("inverse_sqrt", {}),
    ("inverse_sqrt", {"timescale": 7}),
    ("cosine_with_min_lr", {"min_lr_rate": 0.1}),
    ("cosine_with_min_lr", {"min_lr": 0.02, "num_cycles": 0.75}),
    ("cosine_warmup_with_min_lr", {"min_lr_rate": 0.05}),
    ("cosine_warmup_with_min_lr", {"min_lr": 0.01, "warmup_lr_rate": 0.2}),
    ("warmup_stable_decay", {"num_decay_steps": 20}),
    ("warmup_stable_decay", {"num_decay_steps": 15, "warmup_type": "cosine", "decay_type": "linear"}),
    (
        "warmup_stable_decay",
        {"num_decay_steps": 10, "num_stable_steps": 12, "warmup_type": "1-sqrt", "decay_type": "1-sqrt"},
    ),
    ("warmup_stable_decay", {"num_decay_steps": 30, "min_lr_ratio": 0.1, "num_cycles": 1.0}),
]
WARMUPS = [0, 8, 0.2]


@functools.cache
def hf_warmup_steps(warmup: float, total: int) -> int:
    args = transformers.TrainingArguments(
        output_dir="unused", warmup_steps=warmup, report_to="none", use_cpu=True
    )
    return int(args.get_warmup_steps(total))


def optimizer() -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=LR)


def lifecycle_scheduler(name: str, options: dict[str, Any], **settings: Any) -> tuple[Any, Any]:
    args = TrainingArguments(
        lr_scheduler_type=name, lr_scheduler_kwargs=options, learning_rate=LR, **settings
    )
    ours = optimizer()
    return ours, create_scheduler(ours, args, TOTAL)


def assert_same_rates(ours: Any, theirs: Any, what: str) -> None:
    assert len(ours) == len(theirs)
    for step, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        assert math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-15), f"{what}: step {step}: {a} != {b}"


def test_the_names_are_transformers() -> None:
    from transformers.trainer_utils import SchedulerType

    assert set(SCHEDULES) == {kind.value for kind in SchedulerType}


@pytest.mark.filterwarnings("ignore:Both num_training_steps and num_stable_steps")  # transformers' own
@pytest.mark.parametrize("warmup", WARMUPS)
@pytest.mark.parametrize(("name", "options"), CURVES)
def test_each_curve_equals_transformers_step_by_step(
    name: str, options: dict[str, Any], warmup: float
) -> None:
    ours, scheduler = lifecycle_scheduler(name, options, warmup_steps=warmup)
    theirs = optimizer()
    reference = transformers.get_scheduler(
        name,
        theirs,
        num_warmup_steps=hf_warmup_steps(warmup, TOTAL),
        num_training_steps=TOTAL,
        scheduler_specific_kwargs=dict(options),
    )
    rates: tuple[list[float], list[float]] = ([], [])
    for _ in range(TOTAL + 5):  # a few steps past the end too
        rates[0].append(scheduler.get_last_lr()[0])
        rates[1].append(reference.get_last_lr()[0])
        ours.step()
        theirs.step()
        scheduler.step()
        reference.step()
    assert_same_rates(*rates, f"{name} {options} warmup={warmup}")
    assert len(set(rates[0])) > 1 or name.startswith("constant")  # the curve is not flat


def test_warmup_ratio_is_the_fraction_form_of_warmup_steps() -> None:
    """transformers 4's warmup_ratio=r gives transformers 5's warmup_steps=r."""
    ours, scheduler = lifecycle_scheduler("linear", {}, warmup_ratio=0.3)
    theirs = optimizer()
    reference = transformers.get_scheduler(
        "linear", theirs, num_warmup_steps=hf_warmup_steps(0.3, TOTAL), num_training_steps=TOTAL
    )
    rates: tuple[list[float], list[float]] = ([], [])
    for _ in range(TOTAL):
        rates[0].append(scheduler.get_last_lr()[0])
        rates[1].append(reference.get_last_lr()[0])
        ours.step()
        theirs.step()
        scheduler.step()
        reference.step()
    assert_same_rates(*rates, "warmup_ratio")


# a metric that improves, stalls, worsens, improves again: every branch of both schedulers
METRICS = [1.0 - 0.05 * i for i in range(8)] + [0.6] * 12 + [0.7 + 0.01 * i for i in range(10)]
METRICS += [0.5 - 0.02 * i for i in range(15)] + [0.2] * 25


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("reduce_lr_on_plateau", {}),
        ("reduce_lr_on_plateau", {"patience": 2, "factor": 0.5, "cooldown": 1, "min_lr": 0.01}),
        ("reduce_lr_on_plateau", {"mode": "max", "patience": 1, "threshold_mode": "abs", "threshold": 0.01}),
        ("greedy", {}),
        ("greedy", {"patience": 2, "factor": 0.5, "cooldown": 1, "warmup": 1, "min_lr": 0.02, "max_lr": 0.3}),
        (
            "greedy",
            {"patience": 1, "smooth": True, "window_size": 3, "threshold_mode": "rel", "reset_start": 2},
        ),
        ("greedy", {"mode": "max", "patience": 0, "factor": 0.8, "min_lr": 0.05, "reset_start": 3}),
    ],
)
def test_metric_schedules_follow_the_metric_as_transformers(name: str, options: dict[str, Any]) -> None:
    ours, scheduler = lifecycle_scheduler(name, options, eval_strategy="epoch")
    theirs = optimizer()
    reference = transformers.get_scheduler(name, theirs, scheduler_specific_kwargs=dict(options))
    rates: tuple[list[float], list[float]] = ([], [])
    for metric in METRICS:
        scheduler.step(metric)
        reference.step(metric)
        rates[0].append(ours.param_groups[0]["lr"])
        rates[1].append(theirs.param_groups[0]["lr"])
    assert_same_rates(*rates, f"{name} {options}")
    assert len(set(rates[0])) > 1


def test_metric_schedule_options_are_torchs_and_transformers() -> None:
    plateau = inspect.signature(torch.optim.lr_scheduler.ReduceLROnPlateau.__init__).parameters
    assert PLATEAU_OPTIONS == tuple(plateau)[2:]  # after self and optimizer
    assert GREEDY_OPTIONS == tuple(inspect.signature(HFGreedyLR.__init__).parameters)[2:]
    assert GREEDY_OPTIONS == tuple(inspect.signature(GreedyLR.__init__).parameters)[2:]


def test_greedy_state_survives_a_checkpoint(tmp_path: Path) -> None:
    ours, scheduler = lifecycle_scheduler("greedy", {"patience": 1, "smooth": True}, eval_strategy="epoch")
    for metric in METRICS[:20]:
        scheduler.step(metric)
    torch.save(scheduler.state_dict(), tmp_path / "scheduler.pt")
    again_optimizer, again = lifecycle_scheduler(
        "greedy", {"patience": 1, "smooth": True}, eval_strategy="epoch"
    )
    again.load_state_dict(torch.load(tmp_path / "scheduler.pt", weights_only=True))
    assert again_optimizer.param_groups[0]["lr"] == ours.param_groups[0]["lr"]
    for metric in METRICS[20:]:
        scheduler.step(metric)
        again.step(metric)
    assert again.get_last_lr() == scheduler.get_last_lr()


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("cosine", {"cycles": 2}, "'cosine' takes num_cycles; got unknown 'cycles'"),
        ("constant", {"num_cycles": 2}, "'constant' takes no options; got unknown 'num_cycles'"),
        ("warmup_stable_decay", {}, "'warmup_stable_decay' needs num_decay_steps"),
        ("cosine_with_min_lr", {}, "needs exactly one of min_lr and min_lr_rate"),
        (
            "cosine_with_min_lr",
            {"min_lr": 0.1, "min_lr_rate": 0.1},
            "needs exactly one of min_lr and min_lr_rate",
        ),
        ("cosine", {"num_cycles": "2"}, "needs num_cycles to be a number, got '2'"),
        ("polynomial", {"power": float("inf")}, "needs a finite power, got inf"),
        ("inverse_sqrt", {"timescale": 0}, "needs timescale > 0"),
        ("warmup_stable_decay", {"num_decay_steps": 5, "decay_type": "step"}, "needs decay_type in linear"),
        ("reduce_lr_on_plateau", {"patiense": 3}, "'reduce_lr_on_plateau' takes mode, factor, patience"),
    ],
)
def test_scheduler_options_are_checked_at_construction(
    name: str, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ArgumentError, match=r"TrainingArguments\.lr_scheduler_kwargs") as caught:
        TrainingArguments(lr_scheduler_type=name, lr_scheduler_kwargs=options, eval_strategy="epoch")
    assert message in str(caught.value)


def test_options_that_need_the_learning_rate_are_checked_when_training_starts() -> None:
    args = TrainingArguments(lr_scheduler_type="polynomial", lr_scheduler_kwargs={"lr_end": 0.5})
    with pytest.raises(ArgumentError, match=r"lr_end \(0.5\) below the initial learning rate \(0.1\)"):
        create_scheduler(optimizer(), args, TOTAL)


def test_options_come_as_json_text_from_a_command_line() -> None:
    args = TrainingArguments(lr_scheduler_type="cosine", lr_scheduler_kwargs='{"num_cycles": 2}')
    assert args.lr_scheduler_kwargs == {"num_cycles": 2}


def test_metric_schedules_need_evaluations() -> None:
    with pytest.raises(ArgumentError, match="steps on the evaluation metric"):
        TrainingArguments(lr_scheduler_type="reduce_lr_on_plateau")
    args = TrainingArguments(lr_scheduler_type="greedy", eval_strategy="epoch")
    assert (args.metric_for_best_model, args.greater_is_better) == ("loss", False)


def logged_rates(library: str, out: Path, metric: list[float] | None = None, **settings: Any) -> list[Any]:
    """``(step, learning_rate)`` of every log of a short run with transformers' Trainer ('hf') or ours."""
    torch.manual_seed(0)
    common = {"output_dir": str(out / library), "per_device_train_batch_size": 4, "logging_steps": 1}
    common.update(save_strategy="no", disable_tqdm=True, report_to="none", **settings)
    if library == "hf":
        if "warmup_ratio" in common:  # transformers 5 takes the fraction as warmup_steps
            common["warmup_steps"] = common.pop("warmup_ratio")
        args: Any = transformers.TrainingArguments(**common, use_cpu=True)
        trainer: Any = transformers.Trainer
    else:
        args, trainer = TrainingArguments(**common), Trainer
    run = trainer(
        model=Classifier(),
        args=args,
        train_dataset=Examples(16),
        eval_dataset=Examples(8, seed=1),
        compute_metrics=ScriptedMetric(metric) if metric else None,
    )
    run.train()
    return [(e["step"], e["learning_rate"]) for e in run.state.log_history if "learning_rate" in e]


@pytest.mark.parametrize(
    "settings",
    [
        {"lr_scheduler_type": "cosine", "warmup_steps": 0.25, "num_train_epochs": 3},
        {"lr_scheduler_type": "polynomial", "warmup_ratio": 0.1, "lr_scheduler_kwargs": {"power": 2.0}},
        {
            "lr_scheduler_type": "warmup_stable_decay",
            "warmup_steps": 2,
            "lr_scheduler_kwargs": {"num_decay_steps": 4},
        },
    ],
)
def test_the_trainer_logs_the_learning_rates_transformers_logs(
    tmp_path: Path, settings: dict[str, Any]
) -> None:
    theirs = logged_rates("hf", tmp_path, **settings)
    ours = logged_rates("ours", tmp_path, **settings)
    assert [step for step, _ in ours] == [step for step, _ in theirs] and len(ours) > 5
    assert_same_rates([rate for _, rate in ours], [rate for _, rate in theirs], str(settings))


@pytest.mark.parametrize(
    "settings",
    [
        {"lr_scheduler_type": "reduce_lr_on_plateau", "lr_scheduler_kwargs": {"patience": 0, "factor": 0.5}},
        {
            "lr_scheduler_type": "greedy",
            "lr_scheduler_kwargs": {"patience": 0, "factor": 0.5, "min_lr": 1e-6},
        },
    ],
)
def test_metric_schedules_step_after_each_evaluation_as_in_transformers(
    tmp_path: Path, settings: dict[str, Any]
) -> None:
    settings = {"eval_strategy": "epoch", "num_train_epochs": 6, "metric_for_best_model": "score", **settings}
    script = [0.5, 0.4, 0.45, 0.3, 0.35, 0.36]
    theirs = logged_rates("hf", tmp_path, script, **settings)
    ours = logged_rates("ours", tmp_path, script, **settings)
    assert [step for step, _ in ours] == [step for step, _ in theirs]
    assert_same_rates([rate for _, rate in ours], [rate for _, rate in theirs], str(settings))
    assert len({rate for _, rate in ours}) > 2


@pytest.mark.parametrize(
    "settings",
    [
        {"lr_scheduler_type": "reduce_lr_on_plateau", "lr_scheduler_kwargs": {"mode": "max", "patience": 0}},
        {
            "lr_scheduler_type": "greedy",
            "lr_scheduler_kwargs": {"mode": "max", "patience": 1, "smooth": True, "min_lr": 1e-7},
        },
    ],
)
def test_a_metric_schedule_resumes_exactly(tmp_path: Path, settings: dict[str, Any]) -> None:
    """The schedule's state (best, patience counters) is in the checkpoint: the rates after a resume are
    the uninterrupted run's (mode "max" on a falling loss: no improvement, so the rate falls)."""
    settings = {"eval_strategy": "epoch", "save_strategy": "epoch", "num_train_epochs": 6, **settings}
    settings.update(per_device_train_batch_size=4, logging_steps=1, disable_tqdm=True, report_to="none")
    runs = []
    for name, resume in (("whole", None), ("resumed", str(tmp_path / "whole" / "checkpoint-12"))):
        torch.manual_seed(0)
        args = TrainingArguments(str(tmp_path / name), **settings)
        trainer = Trainer(Classifier(), args, train_dataset=Examples(16), eval_dataset=Examples(8, seed=1))
        trainer.train(resume_from_checkpoint=resume)
        runs.append(
            [(e["step"], e["learning_rate"]) for e in trainer.state.log_history if "learning_rate" in e]
        )
    whole, resumed = runs
    assert [entry for entry in whole if entry[0] > 12] == resumed[-12:]
    assert len({rate for _, rate in whole}) > 2
