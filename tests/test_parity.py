"""Event parity with transformers.Trainer: for each configuration the events, with global_step, epoch and the
five flags as a callback placed after DefaultFlowCallback sees them, equal what transformers emits, with
the lifecycle run either way (generated code, the reference table)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.parity import run

pytest.importorskip("transformers")
pytest.importorskip("accelerate")

EPOCH_STOP = ("should_epoch_stop", 2)
TRAIN_STOP = ("should_training_stop", 5)

CASES: dict[str, dict[str, Any]] = {
    "divisible": {"size": 16, "args": {"num_train_epochs": 2, "logging_steps": 2}},
    "not_divisible": {"size": 18, "args": {"num_train_epochs": 2, "logging_steps": 3}},
    "max_steps_mid_epoch": {"size": 16, "args": {"max_steps": 6, "logging_steps": 4}},
    "fractional_epochs": {"size": 16, "args": {"num_train_epochs": 1.5, "logging_steps": 1}},
    "accumulate_2_remainder": {
        "size": 18,
        "args": {"num_train_epochs": 2, "gradient_accumulation_steps": 2, "logging_steps": 1},
    },
    "accumulate_3_remainder": {
        "size": 18,
        "args": {"num_train_epochs": 2, "gradient_accumulation_steps": 3, "logging_steps": 2},
    },
    "accumulate_2_max_steps": {
        "size": 20,
        "args": {"max_steps": 4, "gradient_accumulation_steps": 2, "logging_steps": 3},
    },
    "log_epoch": {"size": 18, "args": {"num_train_epochs": 3, "logging_strategy": "epoch"}},
    "log_no_first_step": {
        "size": 16,
        "args": {"num_train_epochs": 2, "logging_strategy": "no", "logging_first_step": True},
    },
    "log_steps_first_step": {
        "size": 16,
        "args": {"num_train_epochs": 2, "logging_steps": 3, "logging_first_step": True},
    },
    "log_fraction_of_max_steps": {"size": 16, "args": {"max_steps": 8, "logging_steps": 0.25}},
    "eval_steps_final_non_multiple": {
        "size": 16,
        "args": {"max_steps": 7, "eval_strategy": "steps", "eval_steps": 3, "logging_steps": 2},
    },
    "eval_steps_fall_back_to_logging": {
        "size": 16,
        "args": {"max_steps": 6, "eval_strategy": "steps", "logging_steps": 2},
    },
    "eval_epoch_delay": {
        "size": 16,
        "args": {"num_train_epochs": 3, "eval_strategy": "epoch", "eval_delay": 2},
    },
    "eval_steps_delay": {
        "size": 16,
        "args": {"max_steps": 8, "eval_strategy": "steps", "eval_steps": 2, "eval_delay": 5},
    },
    "eval_on_start": {
        "size": 16,
        "args": {"num_train_epochs": 1, "eval_strategy": "steps", "eval_steps": 2, "eval_on_start": True},
    },
    "save_steps": {
        "size": 18,
        "args": {"num_train_epochs": 2, "save_strategy": "steps", "save_steps": 2, "logging_steps": 2},
    },
    "save_epoch_eval_epoch": {
        "size": 18,
        "args": {
            "num_train_epochs": 2,
            "save_strategy": "epoch",
            "eval_strategy": "epoch",
            "logging_strategy": "epoch",
        },
    },
    "save_best": {
        "size": 16,
        "metric": [0.5, 0.4, 0.6, 0.3, 0.3],
        "args": {
            "max_steps": 10,
            "eval_strategy": "steps",
            "eval_steps": 2,
            "save_strategy": "best",
            "metric_for_best_model": "score",
            "greater_is_better": False,
        },
    },
    "load_best_at_end": {
        "size": 16,
        "metric": [0.5, 0.7, 0.6],
        "args": {
            "max_steps": 6,
            "eval_strategy": "steps",
            "eval_steps": 2,
            "save_strategy": "steps",
            "save_steps": 2,
            "load_best_model_at_end": True,
            "metric_for_best_model": "score",
        },
    },
    "early_stopping_patience_1": {
        "size": 16,
        "metric": [0.5, 0.4, 0.45, 0.3],
        "early_stopping": (1,),
        "args": {
            "max_steps": 12,
            "eval_strategy": "steps",
            "eval_steps": 2,
            "metric_for_best_model": "score",
            "greater_is_better": False,
        },
    },
    "early_stopping_patience_2_ties": {
        "size": 16,
        "metric": [0.5, 0.5, 0.4, 0.4, 0.4, 0.1],
        "early_stopping": (2,),
        "args": {
            "max_steps": 16,
            "eval_strategy": "steps",
            "eval_steps": 2,
            "save_strategy": "steps",
            "save_steps": 2,
            "metric_for_best_model": "score",
            "greater_is_better": False,
        },
    },
    "early_stopping_threshold": {
        "size": 16,
        "metric": [0.5, 0.49, 0.3, 0.29],
        "early_stopping": (1, 0.05),
        "args": {
            "num_train_epochs": 4,
            "eval_strategy": "epoch",
            "metric_for_best_model": "score",
            "greater_is_better": False,
        },
    },
    "eval_sets_save_best": {
        "size": 16,
        "eval_sets": {"a": 6, "b": 4},
        "metric": [0.5, 0.4, 0.6, 0.45, 0.3, 0.2, 0.1],  # a, b in turn: b is best at steps 2 and 6
        "after": ("evaluate",),
        "args": {
            "max_steps": 6,
            "eval_strategy": "steps",
            "eval_steps": 2,
            "save_strategy": "best",
            "metric_for_best_model": "b_score",
            "greater_is_better": False,
        },
    },
    "eval_sets_early_stopping": {
        "size": 16,
        "eval_sets": {"a": 6, "b": 4},
        "metric": [0.5, 0.4, 0.3, 0.45, 0.35, 0.2, 0.6, 0.1],  # a: 0.5, 0.3, 0.35: stops at epoch 3
        "early_stopping": (1,),
        "args": {
            "num_train_epochs": 4,
            "eval_strategy": "epoch",
            "metric_for_best_model": "a_score",
            "greater_is_better": False,
        },
    },
    "callback_stops_epoch": {
        "size": 16,
        "stop": EPOCH_STOP,
        "args": {"num_train_epochs": 2, "logging_strategy": "epoch", "eval_strategy": "epoch"},
    },
    "callback_stops_training": {
        "size": 16,
        "stop": TRAIN_STOP,
        "args": {"num_train_epochs": 3, "logging_steps": 2, "save_strategy": "epoch"},
    },
    "evaluate_and_predict_after": {
        "size": 12,
        "after": ("evaluate", "predict"),
        "args": {"num_train_epochs": 1, "logging_steps": 2},
    },
    "stopped_then_evaluate": {
        "size": 16,
        "stop": TRAIN_STOP,
        "after": ("evaluate",),
        "args": {"num_train_epochs": 3},
    },
}


TRANSFORMERS_SAW: dict[str, list[Any]] = {}  # each case run once through transformers


@pytest.mark.parametrize("dispatch", ["generated", "table"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_events_match_transformers(name: str, dispatch: str, tmp_path: Path) -> None:
    case = CASES[name]
    if name not in TRANSFORMERS_SAW:
        TRANSFORMERS_SAW[name] = run("hf", tmp_path / "hf", case)
    expected = TRANSFORMERS_SAW[name]
    actual = run("ours", tmp_path / "ours", case, dispatch)
    assert len(expected) > 10, "the configuration should exercise the loop"
    if actual != expected:
        first = next(
            i
            for i, (a, e) in enumerate(
                zip(actual + [None] * len(expected), expected + [None] * len(actual), strict=True)
            )
            if a != e
        )
        window = slice(max(0, first - 3), first + 4)
        pytest.fail(
            f"event {first} differs\n transformers: {expected[window]}\n lifecycle:    {actual[window]}"
        )
