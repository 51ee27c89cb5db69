"""Evaluation and prediction side by side with transformers.Trainer: the same tiny models (same weights),
data and per-batch padding collators give the same loss and metrics, and the same predictions and labels,
padding included; and the model outputs and batches people write are taken, or refused clearly."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

transformers = pytest.importorskip("transformers")
pytest.importorskip("accelerate")

import lifecycle  # noqa: E402
from tests.support.helpers import Classifier, Examples, Recorder  # noqa: E402
from tests.support.tiny_models import (  # noqa: E402
    LENGTHS,
    pad_causal_lm,
    pad_classification,
    pad_spans,
    tiny_bert,
    tiny_gpt2,
    token_rows,
)

TIMINGS = ("_runtime", "_samples_per_second", "_steps_per_second", "_model_preparation_time")


def causal_lm() -> torch.nn.Module:
    """GPT-2 whose loss transformers' Trainer counts over the shifted labels, as the model averages it.

    transformers 5.23 rescales the loss by the number of labels it counts itself, and counts the
    unshifted ones for a model class whose name does not say ``ForCausalLM``: ``GPT2LMHeadModel``'s
    eval_loss there is not the model's. Naming the loss type gives the model's loss in both trainers
    (:func:`test_a_causal_lm_loss_is_the_models_own` covers the unnamed case)."""
    model: Any = tiny_gpt2()
    model.loss_type = "ForCausalLM"
    return model


def argmax(logits: Any, labels: Any) -> Any:
    return (logits[0] if isinstance(logits, tuple) else logits).argmax(-1)


class Metrics:
    """compute_metrics: accuracy where labels are not padding, on the first prediction and label array;
    keeps every EvalPrediction it is given, as a tuple of its arrays."""

    def __init__(self) -> None:
        self.received: list[tuple[Any, ...]] = []

    def __call__(self, p: Any) -> dict[str, Any]:
        self.received.append(tuple(p))
        predictions = p.predictions[0] if isinstance(p.predictions, tuple) else p.predictions
        labels = p.label_ids[0] if isinstance(p.label_ids, tuple) else p.label_ids
        if predictions.ndim > labels.ndim:
            predictions = predictions.argmax(-1)
        kept = labels != -100
        return {"accuracy": (predictions == labels)[kept].mean(), "mean": np.float32(predictions.mean())}


CASES: dict[str, dict[str, Any]] = {
    "bert": {"model": tiny_bert, "collator": pad_classification},
    "bert_argmax": {"model": tiny_bert, "collator": pad_classification, "preprocess": argmax},
    "bert_accumulate_2": {
        "model": tiny_bert,
        "collator": pad_classification,
        "args": {"eval_accumulation_steps": 2},
    },
    "bert_hidden_states": {  # nested: (logits, (hidden_0, hidden_1, hidden_2)), each padded per batch
        "model": lambda: tiny_bert(output_hidden_states=True),
        "collator": pad_classification,
        "padded": True,
        "args": {"eval_accumulation_steps": 2},
    },
    "bert_ignore_hidden_states": {
        "model": lambda: tiny_bert(output_hidden_states=True),
        "collator": pad_classification,
        "ignore_keys": ["hidden_states"],
    },
    "bert_question_answering": {  # two label columns, two prediction arrays
        "model": lambda: tiny_bert(head="QuestionAnswering"),
        "collator": pad_spans,
        "padded": True,
    },
    "bert_inputs_and_losses_for_metrics": {
        "model": tiny_bert,
        "collator": pad_classification,
        "args": {"include_for_metrics": ["inputs", "loss"], "eval_accumulation_steps": 2},
    },
    "bert_loss_only": {"model": tiny_bert, "collator": pad_classification, "metrics": False},
    "gpt2": {"model": causal_lm, "collator": pad_causal_lm, "padded": True},
    "gpt2_argmax": {"model": causal_lm, "collator": pad_causal_lm, "preprocess": argmax, "padded": True},
    "gpt2_accumulate_2": {
        "model": causal_lm,
        "collator": pad_causal_lm,
        "args": {"eval_accumulation_steps": 2},
        "padded": True,
    },
    "gpt2_argmax_accumulate_2": {
        "model": causal_lm,
        "collator": pad_causal_lm,
        "preprocess": argmax,
        "args": {"eval_accumulation_steps": 2},
        "padded": True,
    },
}


def pair(tmp_path: Path, model: torch.nn.Module, case: dict[str, Any]) -> tuple[Any, Any, Metrics, Metrics]:
    """transformers' Trainer and ours on copies of ``model``, with their compute_metrics."""
    trainers, metrics = [], []
    for lib, extra in ((transformers, {"report_to": "none", "use_cpu": True}), (lifecycle, {})):
        compute = Metrics()
        args = lib.TrainingArguments(
            output_dir=str(tmp_path / lib.__name__),
            per_device_eval_batch_size=3,
            disable_tqdm=True,
            **extra,
            **case.get("args", {}),
        )
        trainer = lib.Trainer(
            model=copy.deepcopy(model),
            args=args,
            data_collator=case.get("collator"),
            compute_metrics=compute if case.get("metrics", True) else None,
            preprocess_logits_for_metrics=case.get("preprocess"),
        )
        trainers.append(trainer)
        metrics.append(compute)
    return trainers[0], trainers[1], metrics[0], metrics[1]


def assert_same(ours: Any, theirs: Any, where: str = "") -> None:
    """Equal structure, and arrays equal in shape, dtype and values (to 1e-6)."""
    assert type(ours) is type(theirs), f"{where}: {type(ours).__name__} vs {type(theirs).__name__}"
    if isinstance(theirs, (tuple, list)):
        assert len(ours) == len(theirs), f"{where}: {len(ours)} items vs {len(theirs)}"
        for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
            assert_same(a, b, f"{where}[{i}]")
    elif isinstance(theirs, dict):
        assert ours.keys() == theirs.keys(), where
        for key in theirs:
            assert_same(ours[key], theirs[key], f"{where}[{key!r}]")
    elif isinstance(theirs, np.ndarray):
        assert ours.shape == theirs.shape and ours.dtype == theirs.dtype, (
            f"{where}: {ours.shape} {ours.dtype} vs {theirs.shape} {theirs.dtype}"
        )
        np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-6, err_msg=where)
    else:
        assert ours == theirs, where


def assert_same_metrics(ours: dict[str, Any], theirs: dict[str, Any]) -> None:
    """The same names and values, timings aside (transformers adds a model preparation time)."""
    ours = {k: v for k, v in ours.items() if not k.endswith(TIMINGS)}
    theirs = {k: v for k, v in theirs.items() if not k.endswith(TIMINGS)}
    assert ours == pytest.approx(theirs, rel=1e-6, abs=1e-6)
    assert all(type(v) is not np.float32 for v in ours.values())  # plain numbers, as transformers'


@pytest.mark.parametrize("name", CASES)
def test_evaluate_and_predict_as_transformers(name: str, tmp_path: Path) -> None:
    case = CASES[name]
    hf, ours, hf_metrics, our_metrics = pair(tmp_path, case["model"](), case)
    rows = token_rows()

    expected, actual = hf.evaluate(rows, **_ignore(case)), ours.evaluate(rows, **_ignore(case))
    assert "eval_loss" in actual
    assert_same_metrics(actual, expected)

    expected_out, actual_out = hf.predict(rows, **_ignore(case)), ours.predict(rows, **_ignore(case))
    assert_same(actual_out.predictions, expected_out.predictions, "predictions")
    assert_same(actual_out.label_ids, expected_out.label_ids, "label_ids")
    assert_same_metrics(actual_out.metrics, expected_out.metrics)
    assert_same(our_metrics.received, hf_metrics.received, "compute_metrics received")

    arrays = list(leaves(actual_out.predictions))
    assert all(a.shape[0] == len(rows) for a in arrays)
    if case.get("padded"):  # sequences of different widths were gathered, padded to the longest
        assert any(a.shape[1] == max(LENGTHS) and (a == -100).any() for a in arrays if a.ndim > 1)


def leaves(tree: Any) -> Any:
    if isinstance(tree, (tuple, list)):
        for item in tree:
            yield from leaves(item)
    else:
        yield tree


def _ignore(case: dict[str, Any]) -> dict[str, Any]:
    return {"ignore_keys": case["ignore_keys"]} if "ignore_keys" in case else {}


def test_a_causal_lm_loss_is_the_models_own(tmp_path: Path) -> None:
    """eval_loss is the mean of the model's per-batch losses, each counted once per example (where
    transformers 5.23 divides GPT2LMHeadModel's summed loss by a count of unshifted labels)."""
    model, rows = tiny_gpt2(), token_rows()
    trainer = lifecycle.Trainer(
        copy.deepcopy(model),
        lifecycle.TrainingArguments(
            output_dir=str(tmp_path), per_device_eval_batch_size=3, disable_tqdm=True
        ),
        data_collator=pad_causal_lm,
    )
    model.eval()
    with torch.no_grad():
        batches = [pad_causal_lm(rows[i : i + 3]) for i in range(0, len(rows), 3)]
        by_batch = [(float(model(**b).loss), len(b["input_ids"])) for b in batches]
    expected = sum(loss * n for loss, n in by_batch) / len(rows)
    assert trainer.evaluate(rows)["eval_loss"] == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize(
    "make",
    [
        tiny_bert,
        lambda: tiny_bert(head="QuestionAnswering"),
        tiny_gpt2,
        Classifier,
        lambda: torch.nn.Linear(4, 2),
    ],
    ids=["classification", "question_answering", "causal_lm", "plain_module", "no_label_argument"],
)
def test_label_names_default_as_transformers(make: Callable[[], torch.nn.Module], tmp_path: Path) -> None:
    model = make()
    hf_args = transformers.TrainingArguments(output_dir=str(tmp_path / "hf"), report_to="none", use_cpu=True)
    expected = transformers.Trainer(model=copy.deepcopy(model), args=hf_args).label_names
    ours = lifecycle.Trainer(model, lifecycle.TrainingArguments(output_dir=str(tmp_path / "ours")))
    assert ours.label_names == expected
    chosen = lifecycle.TrainingArguments(output_dir=str(tmp_path / "ours"), label_names=("y",))
    assert lifecycle.Trainer(model, chosen).label_names == ["y"]


class TupleClassifier(Classifier):
    """The same classifier, returning ``(loss, logits)`` when given labels (``(logits,)`` without)."""

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> Any:
        out = super().forward(x, labels)
        return (out["loss"], out["logits"]) if labels is not None else (out["logits"],)


def test_a_model_returning_a_tuple_trains_and_evaluates(tmp_path: Path) -> None:
    def run(model: torch.nn.Module, out: str) -> lifecycle.Trainer:
        args = lifecycle.TrainingArguments(
            output_dir=str(tmp_path / out),
            max_steps=6,
            logging_steps=2,
            per_device_train_batch_size=4,
            per_device_eval_batch_size=3,
            learning_rate=0.1,
            disable_tqdm=True,
        )
        trainer = lifecycle.Trainer(model, args, train_dataset=Examples(24), compute_metrics=Metrics())
        trainer.train()
        return trainer

    with_dict, with_tuple = run(Classifier(), "dict"), run(TupleClassifier(), "tuple")
    losses = [h["loss"] for h in with_tuple.state.log_history if "loss" in h]
    assert len(losses) == 3 and losses == [h["loss"] for h in with_dict.state.log_history if "loss" in h]
    assert with_tuple.state.global_step == 6

    data = Examples(10, seed=1)
    hf_args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "hf"),
        report_to="none",
        use_cpu=True,
        per_device_eval_batch_size=3,
        disable_tqdm=True,
    )
    hf = transformers.Trainer(model=copy.deepcopy(with_tuple.model), args=hf_args, compute_metrics=Metrics())
    trained = with_tuple.evaluate(data)
    assert trained.pop("epoch") == 1.0  # transformers' trainer has not trained: its epoch is 0
    assert_same_metrics(trained, {k: v for k, v in hf.evaluate(data).items() if k != "epoch"})
    expected, actual = hf.predict(data), with_tuple.predict(data)
    assert_same(actual.predictions, expected.predictions)
    assert_same(actual.label_ids, expected.label_ids)
    assert actual.metrics["test_loss"] == pytest.approx(with_dict.predict(data).metrics["test_loss"])


def test_a_transformers_model_output_trains_as_a_plain_dict(tmp_path: Path) -> None:
    class AsDict(torch.nn.Module):
        def __init__(self, model: torch.nn.Module) -> None:
            super().__init__()
            self.model = model

        def forward(self, **batch: Any) -> dict[str, Any]:
            return dict(self.model(**batch))

    def losses(model: torch.nn.Module, out: str) -> list[float]:
        args = lifecycle.TrainingArguments(
            output_dir=str(tmp_path / out),
            max_steps=4,
            logging_steps=1,
            per_device_train_batch_size=3,
            disable_tqdm=True,
        )
        trainer = lifecycle.Trainer(model, args, data_collator=pad_classification, train_dataset=token_rows())
        trainer.train()
        return [h["loss"] for h in trainer.state.log_history if "loss" in h]

    model = tiny_bert()
    assert losses(copy.deepcopy(model), "model_output") == losses(AsDict(copy.deepcopy(model)), "dict")


def test_a_tensor_dataset_without_a_collator_is_refused_before_any_step(tmp_path: Path) -> None:
    data = torch.utils.data.TensorDataset(torch.randn(8, 4), torch.randint(0, 2, (8,)))
    recorder = Recorder()
    args = lifecycle.TrainingArguments(output_dir=str(tmp_path), max_steps=2, disable_tqdm=True)
    trainer = lifecycle.Trainer(Classifier(), args, train_dataset=data, callbacks=[recorder])
    with pytest.raises(TypeError, match=r"a batch is a list of 2 tensors") as info:
        trainer.train()
    message = str(info.value)
    assert "model(**batch)" in message and "data_collator=lambda rows: {" in message
    assert trainer.state.global_step == 0
    assert not any(event in ("step_end", "substep_end") for event, _ in recorder.events)
    with pytest.raises(TypeError, match=r"a batch is a list of 2 tensors"):
        trainer.evaluate(data)

    def collate(rows: list[tuple[torch.Tensor, torch.Tensor]]) -> dict[str, torch.Tensor]:
        return {"x": torch.stack([r[0] for r in rows]), "labels": torch.stack([r[1] for r in rows])}

    fixed = lifecycle.Trainer(Classifier(), args, train_dataset=data, data_collator=collate)
    fixed.train()  # as the message says
    assert fixed.state.global_step == 2


def test_a_model_without_a_loss_is_told_what_it_returned(tmp_path: Path) -> None:
    args = lifecycle.TrainingArguments(output_dir=str(tmp_path), max_steps=1, disable_tqdm=True)
    unlabelled = lifecycle.Trainer(
        tiny_bert(), args, data_collator=lambda rows: {"input_ids": _ids(rows)}, train_dataset=token_rows()
    )
    with pytest.raises(ValueError, match="has no 'loss'") as info:
        unlabelled.train()
    assert "SequenceClassifierOutput with keys ['logits']" in str(info.value)
    assert "batch with keys ['input_ids']" in str(info.value)

    class LogitsFirst(Classifier):
        def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> Any:
            out = super().forward(x, labels)
            return (out["logits"], out["loss"])

    with pytest.raises(ValueError, match=r"first item is a tensor of shape \(8, 2\), not a loss"):
        lifecycle.Trainer(LogitsFirst(), args, train_dataset=Examples(8)).train()


def _ids(rows: list[dict[str, Any]]) -> torch.Tensor:
    return pad_classification(rows)["input_ids"]
