"""A model in the form transformers' ``from_pretrained`` reads, with no transformers import here.

A transformers model (one with a ``config``) gets ``config.json`` (and ``generation_config.json``
when it has one) beside its ``model.safetensors``, so ``AutoModel*.from_pretrained(folder)`` loads a
checkpoint; its processing class (tokenizer, processor) is saved there too, as transformers does.
``Trainer.save_model`` uses the model's own ``save_pretrained`` when it has one, and writes any other
model's weights as ``model.safetensors``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from lifecycle.checkpoint.contents import save_weights

__all__ = ["CONFIG_FILE", "model_class_name", "save_model_folder", "save_pretrained_config"]

logger = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
GENERATION_CONFIG_FILE = "generation_config.json"


def save_pretrained_config(folder: Path, model: Any, processing_class: Any = None) -> None:
    """``config.json`` (naming the model's class in ``architectures``, as ``save_pretrained`` does),
    ``generation_config.json`` and the processing class's files, for a transformers model."""
    config: Any = getattr(model, "config", None)
    if callable(getattr(config, "to_dict", None)):
        data = {**config.to_dict(), "architectures": [model_class_name(model)]}
        (folder / CONFIG_FILE).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
        generation: Any = getattr(model, "generation_config", None)
        if callable(getattr(generation, "to_json_file", None)):
            generation.to_json_file(str(folder / GENERATION_CONFIG_FILE))
    if callable(getattr(processing_class, "save_pretrained", None)):
        processing_class.save_pretrained(str(folder))


def model_class_name(model: Any) -> str:
    """The model's class name; for a model FSDP2 sharded (class ``FSDP<Name>``), its own class's."""
    cls = type(model)
    if cls.__mro__[1].__name__ == "FSDPModule" and len(cls.__mro__) > 2:
        cls = cls.__mro__[2]
    return cls.__name__


def save_model_folder(
    folder: Path, model: Any, processing_class: Any = None, args: Any = None, weights: Any = None
) -> None:
    """What ``Trainer.save_model`` writes: ``save_pretrained`` for a transformers model, else the
    weights as safetensors; the processing class, and the arguments as plain JSON (never a pickle).
    ``weights``: the full state dict of a sharded model, gathered, to write instead of its own."""
    folder.mkdir(parents=True, exist_ok=True)
    if callable(getattr(model, "save_pretrained", None)):
        model.save_pretrained(str(folder), **({"state_dict": weights} if weights is not None else {}))
    else:
        name = model_class_name(model)
        logger.info("%s is not a transformers model: saving its weights as safetensors", name)
        save_weights(folder, model, weights)
    if callable(getattr(processing_class, "save_pretrained", None)):
        processing_class.save_pretrained(str(folder))
    if args is not None and callable(getattr(args, "to_dict", None)):
        (folder / "training_args.json").write_text(
            json.dumps(args.to_dict(), indent=2, sort_keys=True) + "\n"
        )
