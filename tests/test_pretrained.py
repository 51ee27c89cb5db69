"""Checkpoints and ``save_model`` of transformers models load with ``from_pretrained``, as
transformers' own do; any other model is saved as safetensors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_model

from lifecycle import Trainer, TrainingArguments
from tests.support.helpers import Classifier
from tests.support.tiny_models import VOCAB, tiny_bert, tiny_gpt2

transformers = pytest.importorskip("transformers")


class Tokens(torch.utils.data.Dataset):
    """Random token sequences of one length with a class label and causal-LM labels."""

    def __init__(self, n: int, length: int = 12, vocab: int = VOCAB, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(1, vocab, (n, length), generator=g)
        self.classes = torch.randint(0, 3, (n,), generator=g)

    def __len__(self) -> int:
        return len(self.ids)


class Classified(Tokens):
    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {
            "input_ids": self.ids[i],
            "attention_mask": torch.ones_like(self.ids[i]),
            "labels": self.classes[i],
        }


class Continued(Tokens):
    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[i], "labels": self.ids[i]}


def _trained(out: Path, model: Any, data: Any) -> Trainer:
    args = TrainingArguments(
        output_dir=str(out), max_steps=3, save_steps=3, per_device_train_batch_size=4, disable_tqdm=True
    )
    trainer = Trainer(model, args, train_dataset=data)
    trainer.train()
    return trainer


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for name in sa:
        assert torch.equal(sa[name], sb[name]), f"{name} differs"


@pytest.mark.parametrize(
    ("build", "data", "auto"),
    [
        (tiny_bert, Classified, "AutoModelForSequenceClassification"),
        (tiny_gpt2, Continued, "AutoModelForCausalLM"),  # tied input and output embeddings
    ],
    ids=["bert", "gpt2"],
)
def test_a_checkpoint_loads_with_from_pretrained(tmp_path: Path, build: Any, data: Any, auto: str) -> None:
    trainer = _trained(tmp_path, build(), data(16))
    loaded = getattr(transformers, auto).from_pretrained(tmp_path / "checkpoint-3")
    assert type(loaded) is type(trainer.model)
    _same_weights(trainer.model, loaded)
    if auto == "AutoModelForCausalLM":
        assert loaded.lm_head.weight.data_ptr() == loaded.transformer.wte.weight.data_ptr()


def test_save_model_writes_what_transformers_writes(tmp_path: Path) -> None:
    model = tiny_bert()
    hf = transformers.Trainer(
        model=model, args=transformers.TrainingArguments(str(tmp_path / "hf"), report_to="none", use_cpu=True)
    )
    hf.save_model(str(tmp_path / "hf-model"))
    Trainer(model, TrainingArguments(output_dir=str(tmp_path / "ours"))).save_model(tmp_path / "our-model")

    def files(folder: Path) -> set[str]:
        return {p.name for p in folder.iterdir() if not p.name.startswith("training_args")}

    assert files(tmp_path / "our-model") == files(tmp_path / "hf-model")
    ours = transformers.AutoModelForSequenceClassification.from_pretrained(tmp_path / "our-model")
    theirs = transformers.AutoModelForSequenceClassification.from_pretrained(tmp_path / "hf-model")
    _same_weights(ours, theirs)
    _same_weights(ours, model)


def test_save_model_of_a_plain_module_is_safetensors(tmp_path: Path) -> None:
    model = Classifier(seed=3)
    Trainer(model, TrainingArguments(output_dir=str(tmp_path))).save_model()
    copy = Classifier(seed=4)
    load_model(copy, str(tmp_path / "model.safetensors"))
    _same_weights(model, copy)
    assert (tmp_path / "training_args.json").is_file()
