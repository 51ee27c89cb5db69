"""TrainingArguments as transformers users write them: names, checks at construction, the optimizer they
name, label smoothing, activation checkpointing, torch.compile, pinned memory and serialization; each
compared with the installed transformers where it has the same thing."""

from __future__ import annotations

import dataclasses
import json
import math
import types
import warnings
from pathlib import Path
from typing import Any

import attrs
import pytest
import torch

from lifecycle import ArgumentError, TrainingArguments
from lifecycle.data import build_loader
from lifecycle.optim import create_optimizer, decay_parameter_names
from lifecycle.optimizers import OPTIMIZERS
from lifecycle.smoothing import LabelSmoother
from lifecycle.trainer import Trainer
from lifecycle.transformers_fields import TRANSFORMERS_FIELDS, UNSUPPORTED
from tests.support.helpers import Classifier, Examples

transformers = pytest.importorskip("transformers")

OURS = attrs.fields_dict(TrainingArguments)
HF_FIELDS = {f.name: f for f in dataclasses.fields(transformers.TrainingArguments) if f.init}
#: our defaults that differ from transformers', on purpose
OWN_DEFAULTS = {"output_dir", "report_to", "disable_tqdm", "restore_callback_states_from_checkpoint"}


def hf_args(**settings: Any) -> Any:
    return transformers.TrainingArguments(output_dir="unused", report_to="none", use_cpu=True, **settings)


# -- names -------------------------------------------------------------------------------------------
def test_output_dir_may_come_first_as_in_transformers() -> None:
    args = TrainingArguments("runs/x", num_train_epochs=3, eval_strategy="epoch", save_strategy="epoch")
    assert (args.output_dir, args.num_train_epochs, args.run_name) == ("runs/x", 3, "x")
    assert TrainingArguments(Path("runs/y")).output_dir == "runs/y"
    with pytest.raises(TypeError):
        TrainingArguments("runs/x", 3)  # type: ignore[misc]  # the rest is keyword-only


def test_the_list_of_transformers_fields_is_the_installed_ones() -> None:
    assert list(TRANSFORMERS_FIELDS) == list(HF_FIELDS)


def test_every_transformers_field_we_lack_has_its_reason() -> None:
    lacking = set(TRANSFORMERS_FIELDS) - set(OURS)
    assert lacking == set(UNSUPPORTED) - set(OURS)
    assert set(UNSUPPORTED) <= set(TRANSFORMERS_FIELDS)


def test_shared_fields_keep_transformers_defaults() -> None:
    for name, field in HF_FIELDS.items():
        if name in OURS and name not in OWN_DEFAULTS:
            default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
            ours = OURS[name].default
            assert (ours.factory() if isinstance(ours, attrs.Factory) else ours) == default, name


@pytest.mark.parametrize("name", sorted(set(TRANSFORMERS_FIELDS) - set(OURS)))
def test_a_transformers_field_we_lack_is_an_error_naming_it(name: str) -> None:
    with pytest.raises(
        ArgumentError, match=rf"TrainingArguments: transformers' `{name}` is not supported here \(."
    ):
        TrainingArguments(**{name: HF_FIELDS[name].default})


@pytest.mark.parametrize(
    ("name", "close"),
    [
        ("learning_rat", "learning_rate"),
        ("evaluation_strategy", "eval_strategy"),
        ("warmup_ration", "warmup_ratio"),
    ],
)
def test_an_unknown_name_gets_the_closest(name: str, close: str) -> None:
    with pytest.raises(ArgumentError, match=rf"unknown argument '{name}'; did you mean '{close}'\?"):
        TrainingArguments(**{name: 1})


def test_a_name_like_none_of_ours_is_just_unknown() -> None:
    with pytest.raises(ArgumentError, match=r"unknown argument 'xyzzy'$"):
        TrainingArguments(xyzzy=1)


# -- checks at construction ----------------------------------------------------------------------------
def kinds() -> dict[str, str]:
    return {name: str(field.type) for name, field in OURS.items()}


@pytest.mark.parametrize("name", sorted(n for n, kind in kinds().items() if kind.startswith("float")))
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), "1", True])
def test_numbers_are_finite_numbers(name: str, bad: Any) -> None:
    with pytest.raises(ArgumentError, match=rf"^TrainingArguments\.{name}: must be a finite number"):
        TrainingArguments(**{name: bad})


@pytest.mark.parametrize("name", sorted(n for n, kind in kinds().items() if kind.startswith("int")))
@pytest.mark.parametrize("bad", [1.5, 2.0, "2", False])
def test_integers_are_integers(name: str, bad: Any) -> None:
    with pytest.raises(ArgumentError, match=rf"^TrainingArguments\.{name}: must be an integer"):
        TrainingArguments(**{name: bad})


@pytest.mark.parametrize("name", sorted(n for n, kind in kinds().items() if kind.startswith("bool")))
def test_flags_are_booleans(name: str) -> None:
    with pytest.raises(ArgumentError, match=rf"^TrainingArguments\.{name}: must be True or False"):
        TrainingArguments(**{name: "yes"})


@pytest.mark.parametrize("name", sorted(n for n, kind in kinds().items() if kind.startswith("str")))
def test_texts_are_strings(name: str) -> None:
    with pytest.raises(ArgumentError, match=rf"^TrainingArguments\.{name}: must be"):
        TrainingArguments(**{name: 3})


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"learning_rate": float("nan")},
            "TrainingArguments.learning_rate: must be a finite number, got nan",
        ),
        ({"adam_beta1": 1.0}, "TrainingArguments.adam_beta1: must be < 1, got 1.0"),
        ({"adam_epsilon": -1e-8}, "TrainingArguments.adam_epsilon: must be >= 0, got -1e-08"),
        ({"label_smoothing_factor": 1.0}, "TrainingArguments.label_smoothing_factor: must be < 1, got 1.0"),
        ({"warmup_ratio": 1.5}, "TrainingArguments.warmup_ratio: must be <= 1, got 1.5"),
        ({"warmup_steps": 2.5}, "TrainingArguments.warmup_steps: must be a whole number of steps when >= 1"),
        ({"save_steps": 0}, "TrainingArguments.save_steps: must be > 0, got 0"),
        (
            {"per_device_train_batch_size": 0},
            "TrainingArguments.per_device_train_batch_size: must be >= 1, got 0",
        ),
        ({"lr_scheduler_kwargs": [1]}, "TrainingArguments.lr_scheduler_kwargs: must be a dict"),
        ({"torch_compile_mode": "fast"}, "TrainingArguments.torch_compile_mode: must be one of 'default'"),
        ({"optim": "adamw"}, "must be one of 'adamw_torch', 'adamw_torch_fused', 'adafactor', 'sgd'"),
        ({"optim": "adamw"}, "got 'adamw'; did you mean 'adamw_torch'?"),
        ({"lr_scheduler_type": "cosin"}, "got 'cosin'; did you mean 'cosine'?"),
    ],
)
def test_bad_values_name_the_field(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ArgumentError) as caught:
        TrainingArguments(**changes)
    assert message in str(caught.value)


def test_transformers_enums_are_taken_as_their_values() -> None:
    from transformers.trainer_utils import SchedulerType
    from transformers.training_args import OptimizerNames

    args = TrainingArguments(lr_scheduler_type=SchedulerType.COSINE, optim=OptimizerNames.SGD)
    assert (args.lr_scheduler_type, args.optim) == ("cosine", "sgd")


# -- warmup --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("warmup", [0, 1, 7, 0.1, 0.25, 0.999])
@pytest.mark.parametrize("total", [1, 10, 37, 1000])
def test_warmup_steps_as_transformers_counts_them(warmup: float, total: int) -> None:
    assert TrainingArguments(warmup_steps=warmup).get_warmup_steps(total) == hf_args(
        warmup_steps=warmup
    ).get_warmup_steps(total)


@pytest.mark.parametrize("ratio", [0.0, 0.1, 0.33, 0.5])
def test_warmup_ratio_is_the_fraction_transformers_5_writes_as_warmup_steps(ratio: float) -> None:
    for total in (10, 37, 1000):
        expected = hf_args(warmup_steps=ratio).get_warmup_steps(total)
        assert TrainingArguments(warmup_ratio=ratio).get_warmup_steps(total) == expected
    assert TrainingArguments(warmup_ratio=1.0).get_warmup_steps(40) == 40  # all of the run, not one step


def test_warmup_ratio_and_steps_must_agree() -> None:
    with pytest.raises(ArgumentError, match=r"warmup_ratio=0\.1 and warmup_steps=10 disagree"):
        TrainingArguments(warmup_ratio=0.1, warmup_steps=10)
    with pytest.raises(ArgumentError, match=r"warmup_ratio=0\.1 and warmup_steps=0\.2 disagree"):
        TrainingArguments(warmup_ratio=0.1, warmup_steps=0.2)
    assert TrainingArguments(warmup_ratio=0.1, warmup_steps=0.1).get_warmup_steps(100) == 10


# -- the optimizer -------------------------------------------------------------------------------------
class Blocks(torch.nn.Module):
    """Parameters named every way transformers' decay rule tells apart."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(5, 4)
        self.layer = torch.nn.Linear(4, 4)
        self.ln = torch.nn.LayerNorm(4)
        self.norm = torch.nn.RMSNorm(4)
        self.final_norm = torch.nn.Linear(4, 4)
        self.normalizer = torch.nn.Linear(4, 4, bias=False)  # "norm" inside a longer name decays
        self.post = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.LayerNorm(4))
        self.scale = torch.nn.Parameter(torch.ones(4))
        self.frozen = torch.nn.Linear(4, 4)
        self.frozen.requires_grad_(False)


def tiny_bert() -> torch.nn.Module:
    config = transformers.BertConfig(
        vocab_size=30, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16
    )
    return transformers.BertForSequenceClassification(config)


@pytest.mark.parametrize("model", [Blocks, tiny_bert, Classifier])
def test_weight_decay_skips_what_transformers_skips(model: Any) -> None:
    module = model()
    expected = set(transformers.Trainer.get_decay_parameter_names(None, module))
    assert decay_parameter_names(module) == expected
    assert 0 < len(expected) < len(list(module.parameters()))


def groups_by_decay(optimizer: torch.optim.Optimizer) -> dict[float, set[int]]:
    return {g["weight_decay"]: {id(p) for p in g["params"]} for g in optimizer.param_groups}


@pytest.mark.parametrize(
    ("optim", "optim_args"),
    [
        ("adamw_torch", None),
        ("adamw_torch_fused", None),
        ("sgd", None),
        ("sgd", "momentum=0.9, dampening=0.1,nesterov=False"),
        ("adagrad", "lr_decay=0.01,eps=1e-6"),
        ("rmsprop", "momentum=0.5,alpha=0.9,centered=true"),
    ],
)
def test_each_optimizer_is_the_one_transformers_builds(optim: str, optim_args: str | None) -> None:
    settings = {"optim": optim, "optim_args": optim_args, "learning_rate": 3e-3, "weight_decay": 0.01}
    settings.update(adam_beta1=0.8, adam_beta2=0.99, adam_epsilon=1e-7)
    model = Blocks()
    ours = create_optimizer(model, TrainingArguments(**settings))
    cls, kwargs = transformers.Trainer.get_optimizer_cls_and_kwargs(hf_args(**settings), model)
    assert type(ours) is cls
    for key, value in kwargs.items():
        assert ours.defaults[key] == value, key
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    decay = {id(p) for n, p in model.named_parameters() if n in decay_parameter_names(model)} & trainable
    assert groups_by_decay(ours) == {0.01: decay, 0.0: trainable - decay}


def test_adafactor_is_torchs() -> None:
    args = TrainingArguments(optim="adafactor", optim_args="beta2_decay=-0.7,d=2", learning_rate=0.01)
    optimizer = create_optimizer(Blocks(), args)
    assert type(optimizer) is torch.optim.Adafactor
    assert (optimizer.defaults["lr"], optimizer.defaults["beta2_decay"], optimizer.defaults["d"]) == (
        0.01,
        -0.7,
        2.0,
    )


def test_every_optimizer_trains() -> None:
    for optim in OPTIMIZERS:
        model = Classifier()
        optimizer = create_optimizer(model, TrainingArguments(optim=optim, learning_rate=0.1))
        batch = Examples(8)[:]
        before = model.linear.weight.detach().clone()
        model(batch["x"], batch["labels"])["loss"].backward()
        optimizer.step()
        assert not torch.equal(before, model.linear.weight), optim


@pytest.mark.parametrize(
    ("optim", "optim_args", "message"),
    [
        ("sgd", "momentum", "expected 'key=value' pairs separated by commas, got 'momentum'"),
        ("sgd", "mometum=0.9", "'sgd' takes momentum, dampening, nesterov; got unknown 'mometum'"),
        ("sgd", "weight_decay=0.1", "(weight decay is TrainingArguments.weight_decay)"),
        ("sgd", "nesterov=ture", "nesterov: 'ture' is not true or false"),
        ("adagrad", "eps=nan", "eps: 'nan' is not a finite number"),
        ("adamw_torch", "betas=0.9", "'adamw_torch' takes amsgrad; got unknown 'betas'"),
    ],
)
def test_optim_args_are_checked_at_construction(optim: str, optim_args: str, message: str) -> None:
    with pytest.raises(ArgumentError, match=r"TrainingArguments\.optim_args: ") as caught:
        TrainingArguments(optim=optim, optim_args=optim_args)
    assert message in str(caught.value)


def test_the_default_optimizer_is_transformers_default() -> None:
    assert TrainingArguments().optim == hf_args().optim.value


# -- label smoothing -----------------------------------------------------------------------------------
@pytest.mark.parametrize(("shape", "shift"), [((6, 5), False), ((3, 7, 5), False), ((3, 7, 5), True)])
def test_label_smoothing_equals_transformers(shape: tuple[int, ...], shift: bool) -> None:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(*shape, generator=g)
    labels = torch.randint(0, shape[-1], shape[:-1], generator=g)
    labels.view(-1)[::4] = -100  # padding
    outputs = {"logits": logits}
    theirs = transformers.trainer_pt_utils.LabelSmoother(epsilon=0.1)(outputs, labels, shift_labels=shift)
    ours = LabelSmoother(0.1)(outputs, labels, shift_labels=shift)
    assert torch.allclose(ours, theirs, rtol=1e-6, atol=1e-7)


def test_causal_language_models_shift_their_labels() -> None:
    config = transformers.GPT2Config(n_embd=8, n_layer=1, n_head=2, vocab_size=20, n_positions=16)
    trainer = Trainer(transformers.GPT2LMHeadModel(config), TrainingArguments(label_smoothing_factor=0.1))
    assert trainer.label_smoother is not None and trainer.label_smoother.shift_labels
    classifier = Trainer(Classifier(), TrainingArguments(label_smoothing_factor=0.1))
    assert classifier.label_smoother is not None and not classifier.label_smoother.shift_labels
    assert Trainer(Classifier(), TrainingArguments()).label_smoother is None


def test_a_multi_label_classifier_is_not_smoothed_as_in_transformers() -> None:
    model = tiny_bert()
    model.config.problem_type = "multi_label_classification"
    with pytest.warns(UserWarning, match="label smoothing does not apply to multi-label classification"):
        trainer = Trainer(model, TrainingArguments(label_smoothing_factor=0.1))
    assert trainer.label_smoother is None


def train_and_evaluate(library: Any, out: Path, **settings: Any) -> tuple[list[Any], float, torch.Tensor]:
    """Train the same classifier with transformers' Trainer or ours: losses logged, evaluation loss,
    final weights. The whole dataset is one batch, so the two samplers' orders do not matter."""
    torch.manual_seed(0)
    common = {"output_dir": str(out), "per_device_train_batch_size": 16, "logging_steps": 1, **settings}
    common.update(save_strategy="no", disable_tqdm=True, report_to="none")
    if library is transformers:
        args: Any = transformers.TrainingArguments(**common, use_cpu=True)
    else:
        args = TrainingArguments(**common)
    model = Classifier()
    model.config = types.SimpleNamespace()  # transformers reads its problem_type
    trainer = library.Trainer(
        model=model, args=args, train_dataset=Examples(16), eval_dataset=Examples(8, seed=1)
    )
    trainer.train()
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    return losses, trainer.evaluate()["eval_loss"], model.linear.weight.detach().clone()


@pytest.mark.parametrize(
    "settings",
    [
        {"label_smoothing_factor": 0.2},
        {
            "label_smoothing_factor": 0.1,
            "optim": "sgd",
            "optim_args": "momentum=0.9",
            "lr_scheduler_type": "cosine",
        },
        {"weight_decay": 0.1, "warmup_steps": 0.3, "adam_beta2": 0.95, "lr_scheduler_type": "inverse_sqrt"},
    ],
)
def test_a_run_trains_as_transformers_trains_it(tmp_path: Path, settings: dict[str, Any]) -> None:
    import lifecycle.trainer

    settings = {"max_steps": 6, "learning_rate": 0.05, **settings}
    theirs = train_and_evaluate(transformers, tmp_path / "hf", **settings)
    ours = train_and_evaluate(lifecycle.trainer, tmp_path / "ours", **settings)
    assert ours[0] == pytest.approx(theirs[0], rel=1e-5) and len(ours[0]) == 6
    assert ours[1] == pytest.approx(theirs[1], rel=1e-5)
    assert torch.allclose(ours[2], theirs[2], rtol=1e-5, atol=1e-6)


def test_smoothing_leaves_an_overridden_compute_loss_alone(tmp_path: Path) -> None:
    class Plain(Trainer):
        def compute_loss(self, model: Any, inputs: Any, return_outputs: bool = False, **kwargs: Any) -> Any:
            return model(**inputs)["loss"]

    args = TrainingArguments(str(tmp_path), max_steps=1, label_smoothing_factor=0.3, report_to="none")
    batch = Examples(8)[:]
    plain = Plain(Classifier(), args)
    assert torch.equal(plain.compute_loss(plain.model, batch), Classifier()(**batch)["loss"])
    smoothed = Trainer(Classifier(), args)
    assert not torch.equal(smoothed.compute_loss(smoothed.model, batch), Classifier()(**batch)["loss"])


# -- the model as trained ------------------------------------------------------------------------------
class Checkpointable(Classifier):
    """Records how its checkpointing was turned on."""

    def __init__(self, method: str) -> None:
        super().__init__()
        self.calls: list[tuple[str, dict[str, Any]]] = []
        setattr(self, method, lambda **kwargs: self.calls.append((method, kwargs)))


@pytest.mark.parametrize(
    ("method", "given", "called"),
    [
        ("gradient_checkpointing_enable", None, {"gradient_checkpointing_kwargs": None}),
        (
            "gradient_checkpointing_enable",
            {"use_reentrant": False},
            {"gradient_checkpointing_kwargs": {"use_reentrant": False}},
        ),
        (
            "activation_checkpointing_enable",
            {"use_reentrant": False, "every_n_layers": 2},
            {"activation_checkpointing_kwargs": {"use_reentrant": False}, "every_n_layers": 2},
        ),
    ],
)
def test_gradient_checkpointing_calls_the_models_own_method(
    tmp_path: Path, method: str, given: dict[str, Any] | None, called: dict[str, Any]
) -> None:
    model = Checkpointable(method)
    args = TrainingArguments(
        str(tmp_path),
        max_steps=1,
        gradient_checkpointing=True,
        gradient_checkpointing_kwargs=given,
        report_to="none",
    )
    assert args.activation_checkpointing and args.activation_checkpointing_kwargs == given
    Trainer(model, args, train_dataset=Examples(8)).train()
    assert model.calls == [(method, called)]


def test_gradient_checkpointing_of_a_transformers_model(tmp_path: Path) -> None:
    config = transformers.GPT2Config(n_embd=8, n_layer=2, n_head=2, vocab_size=20, n_positions=16)
    model = transformers.GPT2LMHeadModel(config)
    data = [
        {"input_ids": torch.arange(i, i + 8) % 20, "labels": torch.arange(i, i + 8) % 20} for i in range(4)
    ]
    args = TrainingArguments(str(tmp_path), max_steps=1, activation_checkpointing=True, report_to="none")
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)  # the current method, not the deprecated one
        Trainer(model, args, train_dataset=data).train()
    assert model.is_gradient_checkpointing


def test_gradient_checkpointing_needs_the_model_to_have_it(tmp_path: Path) -> None:
    args = TrainingArguments(str(tmp_path), max_steps=1, gradient_checkpointing=True, report_to="none")
    with pytest.raises(ArgumentError, match=r"Classifier has no gradient_checkpointing_enable\(\)"):
        Trainer(Classifier(), args, train_dataset=Examples(8)).train()


def test_the_two_names_of_checkpointing_must_agree() -> None:
    with pytest.raises(ArgumentError, match="gradient_checkpointing=True and activation_checkpointing=False"):
        TrainingArguments(gradient_checkpointing=True, activation_checkpointing=False)
    args = TrainingArguments()
    assert args.activation_checkpointing is False and args.gradient_checkpointing is False


def test_torch_compile_trains_the_compiled_model(tmp_path: Path) -> None:
    weights = []
    for compile_it in (False, True):
        torch.manual_seed(0)
        model = Classifier()
        compiling = {"torch_compile_backend": "eager"} if compile_it else {}  # a backend turns it on
        args = TrainingArguments(str(tmp_path / str(compile_it)), max_steps=3, report_to="none", **compiling)
        trainer = Trainer(model, args, train_dataset=Examples(16))
        trainer.train()
        assert (trainer.model_wrapped is not model) == compile_it and trainer.model is model
        weights.append(model.linear.weight.detach().clone())
    assert torch.allclose(weights[0], weights[1])


def test_a_compile_backend_or_mode_turns_compiling_on_as_in_transformers() -> None:
    for settings in ({"torch_compile_backend": "eager"}, {"torch_compile_mode": "reduce-overhead"}):
        ours, theirs = TrainingArguments(**settings), hf_args(**settings)
        assert (ours.torch_compile, ours.torch_compile_backend) == (True, theirs.torch_compile_backend)
    assert TrainingArguments(torch_compile=True).torch_compile_backend == "inductor"


# -- data loading --------------------------------------------------------------------------------------
def test_pinned_memory_where_there_is_a_gpu_to_copy_to(tmp_path: Path) -> None:
    assert build_loader(
        Examples(4), 2, collate_fn=None, num_workers=0, seed=0, train=True, pin_memory=True
    ).pin_memory
    args = TrainingArguments(str(tmp_path), report_to="none")
    assert args.dataloader_pin_memory
    trainer = Trainer(Classifier(), args, train_dataset=Examples(4))
    assert trainer.get_train_dataloader().pin_memory == (trainer.device.type == "cuda")
    assert not TrainingArguments(use_cpu=True).dataloader_pin_memory  # as transformers


# -- serialization -------------------------------------------------------------------------------------
def test_to_dict_and_json_hold_every_field() -> None:
    args = TrainingArguments("runs/x", lr_scheduler_kwargs={"num_cycles": 2}, lr_scheduler_type="cosine")
    values = args.to_dict()
    assert set(values) == set(OURS) and values["lr_scheduler_kwargs"] == {"num_cycles": 2}
    assert json.loads(args.to_json_string()) == json.loads(json.dumps(values))


def test_the_sanitized_dict_is_what_tensorboard_takes_as_transformers_makes_it() -> None:
    settings = {"lr_scheduler_kwargs": {"num_cycles": 2}, "lr_scheduler_type": "cosine", "seed": 3}
    ours = TrainingArguments(**settings).to_sanitized_dict()
    theirs = hf_args(**settings).to_sanitized_dict()
    assert all(type(v) in (bool, int, float, str) for v in ours.values())
    for key in (
        "lr_scheduler_kwargs",
        "seed",
        "train_batch_size",
        "eval_batch_size",
        "warmup_steps",
        "data_seed",
    ):
        assert ours[key] == theirs[key], key
    assert not math.isnan(ours["learning_rate"])


def test_report_to_is_recorded_by_tracker_names() -> None:
    tracking = pytest.importorskip("accelerate.tracking")
    from lifecycle.integrations import JSONLTracker

    instance = tracking.TensorBoardTracker("x", "unused-folder")
    args = TrainingArguments(report_to=[instance, tracking.WandBTracker, JSONLTracker, "mlflow"])
    assert args.to_dict()["report_to"] == ["tensorboard", "wandb", "jsonl", "mlflow"]
    assert json.loads(args.to_json_string())["report_to"] == ["tensorboard", "wandb", "jsonl", "mlflow"]
    assert TrainingArguments(report_to=JSONLTracker).to_dict()["report_to"] == "jsonl"
    assert TrainingArguments(report_to="none").to_dict()["report_to"] == "none"


PROCESS_PROPERTIES = ("world_size", "process_index", "local_process_index", "should_log", "should_save")


def test_process_properties_are_read_only_and_agree_with_transformers_in_one_process() -> None:
    ours, theirs = TrainingArguments(), hf_args()
    for name in PROCESS_PROPERTIES:
        assert isinstance(getattr(transformers.TrainingArguments, name), property), name
        assert isinstance(getattr(TrainingArguments, name), property), name
        assert getattr(ours, name) == getattr(theirs, name), name
        with pytest.raises(AttributeError):
            setattr(ours, name, 1)


def test_process_properties_follow_torchrun_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "4")
    args = TrainingArguments()
    assert (args.world_size, args.process_index, args.local_process_index) == (4, 3, 1)
    assert not args.should_log and not args.should_save
