"""``TrainingArguments.fsdp`` and ``fsdp_config``: read as transformers reads them, checked before work."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch

from lifecycle import TrainingArguments
from lifecycle.args import ArgumentError
from lifecycle.fsdp import layers_to_wrap
from lifecycle.fsdp_options import FsdpOptions

transformers = pytest.importorskip("transformers")


def both(tmp_path: Path, **fsdp: Any) -> tuple[TrainingArguments, Any]:
    ours = TrainingArguments(str(tmp_path / "ours"), use_cpu=True, **fsdp)
    theirs = transformers.TrainingArguments(str(tmp_path / "theirs"), use_cpu=True, **fsdp)
    return ours, theirs


@pytest.mark.parametrize(
    "fsdp",
    [
        {"fsdp": True},
        {"fsdp": "full_shard"},
        {"fsdp": "shard_grad_op offload auto_wrap"},
        {"fsdp": ["full_shard", "offload"]},
        {
            "fsdp": True,
            "fsdp_config": {"fsdp_state_dict_type": "SHARDED_STATE_DICT", "reshard_after_forward": False},
        },
        {"fsdp": "shard_grad_op", "fsdp_config": {"reshard_after_forward": True}},  # the config wins
        {
            "fsdp": True,
            "fsdp_config": {"version": 2, "transformer_layer_cls_to_wrap": "Block", "cpu_offload": True},
        },
        {"fsdp": True, "fsdp_config": {"auto_wrap_policy": "SIZE_BASED_WRAP", "min_num_params": 100}},
        {"fsdp": None, "fsdp_config": None},
    ],
)
def test_fsdp_and_its_config_settle_as_in_transformers(tmp_path: Path, fsdp: dict[str, Any]) -> None:
    ours, theirs = both(tmp_path, **fsdp)
    assert ours.fsdp == bool(theirs.fsdp)
    assert ours.fsdp_config == theirs.fsdp_config


def test_the_settled_config_becomes_fsdp2_options(tmp_path: Path) -> None:
    config = tmp_path / "fsdp.json"
    config.write_text(json.dumps({"fsdp_state_dict_type": "SHARDED_STATE_DICT", "async_save": "true"}))
    args = TrainingArguments(str(tmp_path), fsdp="shard_grad_op offload", fsdp_config=str(config))
    assert args.fsdp_options == FsdpOptions(
        reshard_after_forward=False, cpu_offload=True, state_dict_type="SHARDED_STATE_DICT", async_save=True
    )
    assert TrainingArguments(str(tmp_path)).fsdp_options is None


@pytest.mark.parametrize(
    ("fsdp", "words"),
    [
        ({"fsdp": "hybrid_shard"}, ["'hybrid_shard'", "FSDP1"]),
        ({"fsdp": "no_shard"}, ["'no_shard'", "FSDP1"]),
        ({"fsdp": "full_shard sideways"}, ["'sideways'", "full_shard"]),
        (
            {"fsdp": True, "fsdp_config": {"auto_wrap_policy": "EVERYTHING"}},
            ["['auto_wrap_policy']", "NO_WRAP"],
        ),
    ],
)
def test_what_transformers_refuses_is_refused_naming_it(
    tmp_path: Path, fsdp: dict[str, Any], words: list[str]
) -> None:
    with pytest.raises(ValueError):
        transformers.TrainingArguments(str(tmp_path / "theirs"), use_cpu=True, **fsdp)
    with pytest.raises(ArgumentError) as error:
        TrainingArguments(str(tmp_path / "ours"), **fsdp)
    assert all(word in str(error.value) for word in words), error.value


@pytest.mark.parametrize(
    ("config", "words"),
    [
        ({"version": 1}, ["['version']", "FSDP2 only", "version 2"]),
        ({"fsdp_version": 1}, ["['version']", "FSDP1"]),
        ({"state_dict_type": "LOCAL_STATE_DICT"}, ["['state_dict_type']", "SHARDED_STATE_DICT"]),
        ({"backward_prefetch": "BACKWARD_PRE"}, ["['backward_prefetch']", "FSDP1 option"]),
        ({"use_orig_params": True}, ["['use_orig_params']", "FSDP1 option"]),
        ({"xla": True}, ["['xla']", "XLA"]),
        (
            {"reshard_after_forwrd": False},
            ["['reshard_after_forwrd']", "did you mean 'reshard_after_forward'"],
        ),
        ({"cpu_offload": "sometimes"}, ["['cpu_offload']", "True or False"]),
        ({"min_num_params": -1}, ["['min_num_params']", ">= 0"]),
        ({"transformer_layer_cls_to_wrap": [3]}, ["['transformer_layer_cls_to_wrap']", "class names"]),
        ({"async_save": True}, ["['async_save']", "SHARDED_STATE_DICT"]),
    ],
)
def test_a_config_that_cannot_work_is_refused_naming_the_field(
    tmp_path: Path, config: dict[str, Any], words: list[str]
) -> None:
    with pytest.raises(ArgumentError) as error:
        TrainingArguments(str(tmp_path), fsdp=True, fsdp_config=config)
    message = str(error.value)
    assert message.startswith("TrainingArguments.fsdp_config"), message
    assert all(word in message for word in words), message


def test_an_unreadable_config_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ArgumentError, match=r"fsdp_config: cannot read .*missing\.json"):
        TrainingArguments(str(tmp_path), fsdp=True, fsdp_config=str(tmp_path / "missing.json"))
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ArgumentError, match=r"bad\.json' is not JSON"):
        TrainingArguments(str(tmp_path), fsdp=True, fsdp_config=str(tmp_path / "bad.json"))


def test_a_config_without_fsdp_is_checked_and_left_off_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        args = TrainingArguments(str(tmp_path), fsdp_config={"state_dict_type": "SHARDED_STATE_DICT"})
    assert args.fsdp is False and args.fsdp_options is None
    assert "fsdp is not set" in caplog.text


def test_an_optimizer_given_to_the_trainer_is_refused_under_fsdp(tmp_path: Path) -> None:
    from lifecycle import Trainer

    model = torch.nn.Linear(2, 2)
    args = TrainingArguments(str(tmp_path), fsdp=True, use_cpu=True, report_to="none")
    with pytest.raises(ArgumentError, match=r"optimizers=.*fsdp.*TrainingArguments.optim"):
        Trainer(model, args, optimizers=(torch.optim.SGD(model.parameters(), lr=0.1), None))


class Block(torch.nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(width, width)


class Net(torch.nn.Module):
    _no_split_modules: ClassVar[list[str]] = ["Block"]

    def __init__(self) -> None:
        super().__init__()
        self.embed = torch.nn.Linear(4, 16)
        self.blocks = torch.nn.ModuleList([Block(16), Block(16)])
        self.head = torch.nn.Linear(16, 2)


def test_the_layers_sharded_on_their_own_are_chosen_by_the_policy() -> None:
    net = Net()
    assert layers_to_wrap(net, FsdpOptions()) == [net.blocks[1], net.blocks[0]]  # _no_split_modules
    named = FsdpOptions(transformer_layer_cls_to_wrap=("Linear",))
    assert layers_to_wrap(net, named) == [net.head, net.blocks[1].linear, net.blocks[0].linear, net.embed]
    assert layers_to_wrap(net, FsdpOptions(auto_wrap_policy="NO_WRAP")) == []
    # 16*16+16 = 272 parameters per block's linear; the embedding (80) and head (34) stay with the root
    sized = FsdpOptions(auto_wrap_policy="SIZE_BASED_WRAP", min_num_params=200)
    assert layers_to_wrap(net, sized) == [net.blocks[0].linear, net.blocks[1].linear]
    with pytest.raises(ArgumentError, match=r"transformer_layer_cls_to_wrap.*no Decoder in Net.*Block"):
        layers_to_wrap(net, FsdpOptions(transformer_layer_cls_to_wrap=("Decoder",)))
