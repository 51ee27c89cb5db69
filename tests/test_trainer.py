"""The Trainer's own work: accumulation, clipping, autocast, metrics, no host sync between logs,
lifecycle extension, and clear errors for bad input."""

from __future__ import annotations

import inspect
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch.overrides import TorchFunctionMode

import lifecycle
from lifecycle import (
    TRAINING_LIFECYCLE,
    ArgumentError,
    EvalPrediction,
    State,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)
from tests.support.helpers import Classifier, Examples, Recorder


def args(tmp_path: Path, **changes: Any) -> TrainingArguments:
    settings: dict[str, Any] = {"per_device_train_batch_size": 4, "disable_tqdm": True, "learning_rate": 0.1}
    settings.update(changes)
    return TrainingArguments(output_dir=str(tmp_path), **settings)


def sgd(model: torch.nn.Module) -> tuple[torch.optim.Optimizer, None]:
    return torch.optim.SGD(model.parameters(), lr=0.1), None


def test_accumulating_two_batches_of_four_equals_one_batch_of_eight(tmp_path: Path) -> None:
    def final_weights(batch: int, accumulate: int) -> torch.Tensor:
        model = Classifier()
        trainer = Trainer(
            model,
            args(
                tmp_path / f"{batch}",
                per_device_train_batch_size=batch,
                max_grad_norm=0,
                gradient_accumulation_steps=accumulate,
                num_train_epochs=1,
                lr_scheduler_type="constant",
            ),
            train_dataset=Examples(32),
            optimizers=sgd(model),
        )
        trainer.train()
        return model.linear.weight.detach().cpu().clone()

    baseline = Classifier().linear.weight.detach().clone()
    accumulated, whole = final_weights(4, 2), final_weights(8, 1)
    assert not torch.equal(accumulated, baseline)
    torch.testing.assert_close(accumulated, whole, rtol=1e-5, atol=1e-6)


def test_a_remainder_window_steps_once_and_averages_its_own_batches(tmp_path: Path) -> None:
    rec = Recorder()
    model = Classifier()
    trainer = Trainer(
        model,
        args(tmp_path, gradient_accumulation_steps=2, num_train_epochs=1),
        train_dataset=Examples(20),
        callbacks=[rec],
    )  # 5 batches: windows 2, 2, 1
    trainer.train()
    assert trainer.state.global_step == 3
    assert [e for e, _ in rec.events].count("substep_end") == 2


def test_clipping_logs_the_grad_norm_and_bounds_the_update(tmp_path: Path) -> None:
    trainer = Trainer(
        Classifier(),
        args(tmp_path, max_grad_norm=0.01, logging_steps=1, max_steps=3),
        train_dataset=Examples(16),
    )
    trainer.train()
    logs = [h for h in trainer.state.log_history if "loss" in h]
    assert len(logs) == 3
    assert all(h["grad_norm"] > 0.01 for h in logs)  # the norm before clipping is reported
    assert all(h["learning_rate"] > 0 for h in logs)


class HostSyncs(TorchFunctionMode):
    """Counts tensor-to-Python conversions made by the lifecycle package's own code."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []
        self.root = str(Path(lifecycle.__file__).parent)

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        name = getattr(func, "__name__", "")
        if name in {"item", "__float__", "__bool__", "__int__", "tolist"}:
            caller = inspect.currentframe().f_back  # type: ignore[union-attr]
            where = caller.f_code.co_filename if caller is not None else ""
            # the sampler's index permutation is built on the CPU by design, once per epoch
            if where.startswith(self.root) and not where.endswith("data.py"):
                self.calls.append(f"{name} in {caller.f_code.co_name}")  # type: ignore[union-attr]
        return func(*args, **(kwargs or {}))


def test_no_host_sync_on_steps_that_do_not_log(tmp_path: Path) -> None:
    model = Classifier()
    trainer = Trainer(
        model,
        args(tmp_path, logging_steps=4, max_steps=8, save_strategy="no"),
        train_dataset=Examples(64),
        optimizers=sgd(model),
    )
    with HostSyncs() as syncs:
        trainer.train()
    # two train logs (steps 4 and 8), each reading the loss sum, the grad norm and the non-finite
    # counts once, then the summary (the loss sum and the counts)
    reads = ("collect_train_logs", " in drain", " in check")
    in_step_loop = [c for c in syncs.calls if not any(r in c for r in reads)]
    assert in_step_loop == []
    assert sum(c.endswith(" in drain") for c in syncs.calls) == 3
    assert sum(c.endswith(" in check") for c in syncs.calls) == 3


def test_logged_loss_is_the_mean_since_the_last_log(tmp_path: Path) -> None:
    model = Classifier()
    seen: list[float] = []
    original = model.forward

    def forward(**batch: Any) -> Any:
        out = original(**batch)
        seen.append(float(out["loss"].detach()))
        return out

    model.forward = forward  # type: ignore[method-assign]
    trainer = Trainer(
        model,
        args(tmp_path, logging_steps=3, max_steps=6, gradient_accumulation_steps=2),
        train_dataset=Examples(48),
    )
    trainer.train()
    logs = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    per_step = [(seen[2 * i] + seen[2 * i + 1]) / 2 for i in range(6)]
    assert logs == pytest.approx([sum(per_step[:3]) / 3, sum(per_step[3:]) / 3], rel=1e-5)


@pytest.mark.parametrize("nan_filter", [True, False])
def test_a_non_finite_loss_is_filtered_from_the_log(tmp_path: Path, nan_filter: bool) -> None:
    class Glitch(Classifier):
        calls = 0

        def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
            out = super().forward(x, labels)
            Glitch.calls += 1
            if Glitch.calls == 2:  # the value turns nan; the gradient stays finite
                out["loss"] = out["loss"] + torch.tensor(float("nan"))
            return out

    trainer = Trainer(
        Glitch(),
        # "warn" trains on past the nan (the default, "stop", would end the run: tests/test_nonfinite.py)
        args(tmp_path, max_steps=4, logging_steps=4, logging_nan_inf_filter=nan_filter, nonfinite="warn"),
        train_dataset=Examples(16),
    )
    trainer.train()
    (logged,) = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert math.isfinite(logged) is nan_filter
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())


def test_bf16_autocast_on_request(tmp_path: Path) -> None:
    dtypes: list[torch.dtype] = []

    class Probe(Classifier):
        def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
            out = super().forward(x, labels)
            dtypes.append(out["logits"].dtype)
            return out

    trainer = Trainer(Probe(), args(tmp_path, bf16=True, max_steps=2), train_dataset=Examples(16))
    trainer.train()
    assert len(dtypes) == 2 and all(d == torch.bfloat16 for d in dtypes)
    trainer.evaluate(Examples(8))  # evaluation runs under the same autocast
    assert len(dtypes) == 3 and all(d == torch.bfloat16 for d in dtypes)  # one batch of 8


def test_compute_metrics_gets_numpy_and_metrics_get_the_eval_prefix(tmp_path: Path) -> None:
    received: list[EvalPrediction] = []

    def accuracy(p: EvalPrediction) -> dict[str, float]:
        received.append(p)
        return {"accuracy": float((p.predictions.argmax(-1) == p.label_ids).mean())}

    trainer = Trainer(
        Classifier(),
        args(tmp_path, max_steps=4),
        train_dataset=Examples(16),
        eval_dataset=Examples(10, seed=3),
        compute_metrics=accuracy,
    )
    trainer.train()
    metrics = trainer.evaluate()
    assert isinstance(received[0].predictions, np.ndarray) and received[0].predictions.shape == (10, 2)
    assert received[0].label_ids.shape == (10,)
    assert 0.0 <= metrics["eval_accuracy"] <= 1.0
    assert {"eval_loss", "eval_runtime", "eval_samples_per_second", "epoch"} <= set(
        trainer.state.log_history[-1]
    )
    prediction = trainer.predict(Examples(5, seed=4))
    assert prediction.predictions.shape == (5, 2) and "test_loss" in prediction.metrics


def test_an_added_state_fires_its_callback_and_leaves_hf_events_unchanged(tmp_path: Path) -> None:
    def after_three(s: Any, c: Any) -> bool:
        return s.global_step >= 3

    swa = TRAINING_LIFECYCLE.extend(
        states=[State("swa_update")],
        transitions=[
            ("optimizer_step", "optimize", "swa_update", after_three),
            ("swa_end", "swa_update", "advance"),
        ],
    )

    class Swa(TrainerCallback):
        def __init__(self) -> None:
            self.averaged: list[int] = []

        @lifecycle.on("swa_end")
        def average(self, event: lifecycle.Event) -> None:
            self.averaged.append(event.state.global_step)

    def events(lc: Any, extra: list[Any]) -> list[tuple[str, int]]:
        rec = Recorder()
        Trainer(
            Classifier(),
            args(tmp_path / f"run-{len(extra)}", max_steps=6, logging_steps=2),
            train_dataset=Examples(16),
            callbacks=[*extra, rec],
            lifecycle=lc,
        ).train()
        return [e for e in rec.events]

    swa_cb = Swa()
    assert events(swa, [swa_cb]) == events(TRAINING_LIFECYCLE, [])
    assert swa_cb.averaged == [3, 4, 5]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"eval_strategy": "sometimes"},
            "TrainingArguments.eval_strategy: must be one of 'no', 'steps', 'epoch', got 'sometimes'",
        ),
        ({"save_strategy": "always"}, "must be one of 'no', 'steps', 'epoch', 'best'"),
        ({"learning_rate": -1.0}, "TrainingArguments.learning_rate: must be >= 0, got -1.0"),
        (
            {"gradient_accumulation_steps": 0},
            "TrainingArguments.gradient_accumulation_steps: must be >= 1, got 0",
        ),
        ({"bf16": True, "fp16": True}, "bf16 and fp16 cannot both be True"),
        (
            {"load_best_model_at_end": True, "eval_strategy": "steps", "save_strategy": "epoch"},
            "needs save_strategy to match eval_strategy",
        ),
        (
            {"load_best_model_at_end": True, "eval_strategy": "steps", "eval_steps": 3, "save_steps": 4},
            "save_steps to be a multiple of eval_steps",
        ),
    ],
)
def test_bad_arguments_name_the_field(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ArgumentError) as info:
        TrainingArguments(output_dir="unused", **changes)
    assert message in str(info.value)


def test_best_model_defaults_follow_hugging_face() -> None:
    a = TrainingArguments(load_best_model_at_end=True, eval_strategy="epoch", save_strategy="epoch")
    assert (a.metric_for_best_model, a.greater_is_better) == ("loss", False)
    b = TrainingArguments(metric_for_best_model="accuracy")
    assert b.greater_is_better is True


def test_a_model_without_loss_gets_a_clear_error(tmp_path: Path) -> None:
    class NoLoss(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = torch.nn.Linear(4, 2)

        def forward(self, x: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
            return {"logits": self.linear(x)}

    with pytest.raises(ValueError, match="has no 'loss'") as info:
        Trainer(NoLoss(), args(tmp_path, max_steps=1), train_dataset=Examples(8)).train()
    assert "a dict with keys ['logits'], from a batch with keys ['x', 'labels']" in str(info.value)
    assert "in lifecycle state 'step' (Trainer.forward_backward) at global_step 0" in info.value.__notes__


def test_evaluate_without_data_says_what_is_missing(tmp_path: Path) -> None:
    trainer = Trainer(Classifier(), args(tmp_path, max_steps=1), train_dataset=Examples(8))
    with pytest.raises(Exception, match="evaluation needs an eval_dataset"):
        trainer.evaluate()


def test_a_second_train_gets_a_fresh_schedule_but_keeps_the_one_a_user_gave(tmp_path: Path) -> None:
    def learning_rates(trainer: Trainer) -> list[float]:
        trainer.train()
        return [e["learning_rate"] for e in trainer.state.log_history if "learning_rate" in e]

    # each train() is a new run, replacing the last one's checkpoints
    settings = {
        "max_steps": 4,
        "logging_steps": 1,
        "lr_scheduler_type": "linear",
        "overwrite_output_dir": True,
    }
    ours = Trainer(Classifier(), args(tmp_path / "ours", **settings), train_dataset=Examples(16))
    first = learning_rates(ours)
    assert first[0] == 0.1 and first == sorted(first, reverse=True)  # decays to 0 over the first run
    assert learning_rates(ours) == first  # the second run decays again from the start

    model = Classifier()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    given = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5**step)
    theirs = Trainer(model, args(tmp_path / "theirs", **settings), train_dataset=Examples(16),
                     optimizers=(optimizer, given))  # fmt: skip
    learning_rates(theirs)
    assert learning_rates(theirs)[0] == 0.1 * 0.5**4 and theirs.lr_scheduler is given  # it goes on


def test_evaluation_and_prediction_read_the_loaders_a_subclass_gives(tmp_path: Path) -> None:
    class OneByOne(Trainer):
        def get_eval_dataloader(self, eval_dataset: Any = None) -> Any:
            return torch.utils.data.DataLoader(eval_dataset or self.eval_dataset, batch_size=1)

        def get_test_dataloader(self, test_dataset: Any) -> Any:
            return torch.utils.data.DataLoader(test_dataset, batch_size=5)

    seen: list[Any] = []

    class Loaders(TrainerCallback):
        def on_prediction_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            seen.append(kwargs["eval_dataloader"])

    data = Examples(10, seed=3)
    default = Trainer(Classifier(), args(tmp_path / "a"), eval_dataset=data)
    custom = OneByOne(Classifier(), args(tmp_path / "b"), eval_dataset=data, callbacks=[Loaders])
    expected, metrics = default.evaluate(), custom.evaluate()
    assert metrics["eval_loss"] == pytest.approx(expected["eval_loss"], rel=1e-6)  # a mean per example
    assert len(seen) == 10 and seen[0].batch_size == 1
    predicted = custom.predict(data)
    assert predicted.predictions.shape == (10, 2) and len(seen) == 10 + 2 and seen[-1].batch_size == 5


def test_several_evaluation_sets_are_evaluated_in_turn_under_their_names(tmp_path: Path) -> None:
    sets = {"near": Examples(8, seed=4), "far": Examples(6, seed=5)}
    recorder = Recorder()
    trainer = Trainer(Classifier(), args(tmp_path), eval_dataset=sets, callbacks=[recorder])
    metrics = trainer.evaluate()
    alone = {name: Trainer(Classifier(), args(tmp_path)).evaluate(data) for name, data in sets.items()}
    for name in sets:
        assert metrics[f"eval_{name}_loss"] == pytest.approx(alone[name]["eval_loss"], rel=1e-6)
    assert [e for e, _ in recorder.events if e in ("log", "evaluate")] == ["log", "evaluate"] * 2
    with pytest.raises(ValueError, match="eval_dataset is an empty dict"):
        trainer.evaluate({})

    class Broken(Examples):
        def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
            raise OSError("unreadable example")

    with pytest.raises(OSError, match="unreadable example"):
        trainer.evaluate({"near": sets["near"], "broken": Broken(4), "far": sets["far"]})
    assert "eval_loss" in trainer.evaluate(sets["far"])  # what the failed evaluation left is not resumed


def test_a_compute_loss_override_serves_training_and_evaluation(tmp_path: Path) -> None:
    class PlusOne(Trainer):
        def compute_loss(
            self, model: Any, inputs: Any, return_outputs: bool = False, num_items_in_batch: Any = None
        ) -> Any:
            outputs = model(**inputs)
            loss = outputs["loss"] + 1.0
            return (loss, outputs) if return_outputs else loss

    def run(kind: type[Trainer]) -> Trainer:
        settings = {"max_steps": 4, "logging_steps": 2, "learning_rate": 0.0, "eval_strategy": "steps"}
        trainer = kind(Classifier(), args(tmp_path / kind.__name__, **settings), train_dataset=Examples(16),
                       eval_dataset=Examples(8, seed=1))  # fmt: skip
        trainer.train()
        return trainer

    plain, plus = run(Trainer), run(PlusOne)  # a learning rate of 0: the same model, the same batches
    for key in ("loss", "eval_loss"):
        ours = [e[key] for e in plus.state.log_history if key in e]
        theirs = [e[key] for e in plain.state.log_history if key in e]
        assert len(ours) == 2 and ours == pytest.approx([v + 1.0 for v in theirs], rel=1e-6)

    class Wrong(Trainer):
        def compute_loss(self, model: Any, inputs: Any, return_outputs: bool = False, **kw: Any) -> Any:
            return 0.5

    with pytest.raises(TypeError, match=r"Wrong\.compute_loss returned float: return the loss as a tensor"):
        Wrong(Classifier(), args(tmp_path / "wrong", max_steps=1), train_dataset=Examples(8)).train()


def test_an_entry_point_called_from_a_callback_says_what_to_do_instead(tmp_path: Path) -> None:
    class EvaluateNow(TrainerCallback):
        trainer: Trainer

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.trainer.evaluate()

    callback = EvaluateNow()
    trainer = Trainer(Classifier(), args(tmp_path, max_steps=2, report_to="jsonl"), train_dataset=Examples(8),
                      eval_dataset=Examples(4), callbacks=[callback])  # fmt: skip
    callback.trainer = trainer
    with pytest.raises(lifecycle.CallbackError, match=r"Trainer\.evaluate\(\) cannot start while .* "
                       r"state 'advance' .* control\.should_evaluate = True"):  # fmt: skip
        trainer.train()
    trainer.remove_callback(EvaluateNow)
    assert trainer.train().global_step == 2  # the refused call disturbed nothing
