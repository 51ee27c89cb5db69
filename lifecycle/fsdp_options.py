"""``TrainingArguments.fsdp`` and ``fsdp_config``, under transformers' names, checked before any work.

As in transformers, ``fsdp`` turns Fully Sharded Data Parallel on (``True``, or its older strategy
words: ``"full_shard"``, ``"shard_grad_op"``, ``"offload"``, ``"auto_wrap"``, space-separated or in a
list) and ``fsdp_config`` tunes it (a dict, its JSON text, or the path of a JSON file; an ``fsdp_``
prefix on a key is dropped). Only FSDP2 (``torch.distributed.fsdp.fully_shard``) is offered: FSDP1's
strategies and keys are refused with a message naming them. :class:`FsdpOptions` is the checked result;
:mod:`lifecycle.fsdp` applies it. No torch here.
"""

from __future__ import annotations

import difflib
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from lifecycle.argcheck import ArgumentError

__all__ = ["STATE_DICT_TYPES", "WRAP_POLICIES", "FsdpOptions", "settle_fsdp"]

logger = logging.getLogger(__name__)

STATE_DICT_TYPES = ("SHARDED_STATE_DICT", "FULL_STATE_DICT")
WRAP_POLICIES = ("TRANSFORMER_BASED_WRAP", "SIZE_BASED_WRAP", "NO_WRAP")

_STRATEGIES = {
    "full_shard": ("reshard_after_forward", True),
    "shard_grad_op": ("reshard_after_forward", False),
}
_FSDP1_STRATEGIES = ("no_shard", "hybrid_shard", "hybrid_shard_zero2")
_FSDP1_KEYS = (
    "forward_prefetch",
    "backward_prefetch",
    "use_orig_params",
    "sync_module_states",
    "limit_all_gathers",
)
_XLA_KEYS = ("xla", "xla_fsdp_settings", "xla_fsdp_v2", "xla_fsdp_grad_ckpt")
_BOOLS = ("reshard_after_forward", "cpu_offload", "activation_checkpointing", "cpu_ram_efficient_loading")
_KEYS = (
    *("version", *_BOOLS, "state_dict_type", "auto_wrap_policy", "transformer_layer_cls_to_wrap"),
    *("min_num_params", "async_save"),
)


def _fail(key: str, what: str) -> ArgumentError:
    return ArgumentError(f"TrainingArguments.fsdp_config[{key!r}]: {what}")


def _flag(key: str, value: Any) -> bool:
    """A bool, or transformers' spellings of one in text (``"true"``, ``"false"``, ``"1"``, ``"0"``, ...)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "y", "on", "t"):
        return True
    if text in ("false", "0", "no", "n", "off", "f"):
        return False
    raise _fail(key, f"must be True or False, got {value!r}")


@attrs.frozen
class FsdpOptions:
    """FSDP2 as the arguments ask (each field is the ``fsdp_config`` key of its name)."""

    reshard_after_forward: bool = True
    """Free the gathered parameters after forward (``full_shard``); False keeps them for backward
    (``shard_grad_op``: more memory, one all-gather fewer)."""
    cpu_offload: bool = False
    """Parameters, gradients and optimizer state live on the CPU between uses (``CPUOffloadPolicy``)."""
    activation_checkpointing: bool = False
    """Each wrapped layer recomputes its activations in backward."""
    cpu_ram_efficient_loading: bool = False
    """Rank 0's weights are broadcast to the others at sharding (theirs may be empty, on ``meta``)."""
    state_dict_type: str = "FULL_STATE_DICT"
    """Checkpoints hold gathered weights (``FULL_STATE_DICT``, as DDP's) or each rank's shards
    written through ``torch.distributed.checkpoint`` (``SHARDED_STATE_DICT``)."""
    auto_wrap_policy: str = "TRANSFORMER_BASED_WRAP"
    """Which submodules are sharded as units of their own before the whole model."""
    transformer_layer_cls_to_wrap: tuple[str, ...] = ()
    """Class names of the layers to wrap (default: the model's ``_no_split_modules``)."""
    min_num_params: int = 0
    """``SIZE_BASED_WRAP``: a submodule with at least this many parameters is wrapped."""
    async_save: bool = False
    """``SHARDED_STATE_DICT``: shards are written in the background while training goes on; the
    checkpoint appears (verified, renamed into place) only once every rank's writing is done.
    A lifecycle option; transformers has no such key."""

    @property
    def sharded_checkpoints(self) -> bool:
        return self.state_dict_type == "SHARDED_STATE_DICT"

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> FsdpOptions:
        """The options of a normalized ``fsdp_config`` (see :func:`settle_fsdp`); a key or value that
        cannot work is an :class:`ArgumentError` naming it."""
        version = config.get("version", 2)
        if version in (1, "1"):
            raise _fail("version", "FSDP2 only: version 1 (FSDP1) is not supported here; use version 2")
        if version not in (2, "2"):
            raise _fail("version", f"must be 2 (FSDP2), got {version!r}")
        for key in config:
            _check_key(key, config[key])
        values: dict[str, Any] = {k: _flag(k, config[k]) for k in _BOOLS if k in config}
        values["async_save"] = _flag("async_save", config.get("async_save", False))
        state_dict_type = config.get("state_dict_type", "FULL_STATE_DICT")
        if state_dict_type not in STATE_DICT_TYPES:
            raise _fail("state_dict_type", f"must be one of {', '.join(map(repr, STATE_DICT_TYPES))}, got "
                        f"{state_dict_type!r}")  # fmt: skip
        policy = config.get("auto_wrap_policy", "TRANSFORMER_BASED_WRAP")
        if policy not in WRAP_POLICIES:
            raise _fail(
                "auto_wrap_policy", f"must be one of {', '.join(map(repr, WRAP_POLICIES))}, got {policy!r}"
            )
        layers = config.get("transformer_layer_cls_to_wrap") or []
        layers = [layers] if isinstance(layers, str) else layers
        if not isinstance(layers, (list, tuple)) or not all(isinstance(n, str) and n for n in layers):
            raise _fail("transformer_layer_cls_to_wrap", f"must be a list of class names, got {layers!r}")
        minimum = config.get("min_num_params", 0)
        if isinstance(minimum, bool) or not isinstance(minimum, int) or minimum < 0:
            raise _fail("min_num_params", f"must be an integer >= 0, got {minimum!r}")
        if values["async_save"] and state_dict_type != "SHARDED_STATE_DICT":
            raise _fail("async_save", "writes shards in the background: it needs state_dict_type "
                        "'SHARDED_STATE_DICT'")  # fmt: skip
        return cls(
            state_dict_type=state_dict_type,
            auto_wrap_policy=policy,
            transformer_layer_cls_to_wrap=tuple(layers),
            min_num_params=minimum,
            **values,
        )


def _check_key(key: str, value: Any) -> None:
    if key in _KEYS:
        return
    if key in _FSDP1_KEYS:
        raise _fail(key, "is an FSDP1 option; FSDP2 (fully_shard), the only FSDP here, has no such setting")
    if key in _XLA_KEYS:
        if value not in (False, "false", "False", None, {}):
            raise _fail(key, "PyTorch/XLA FSDP is not supported here")
        return
    close = difflib.get_close_matches(key, _KEYS, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise _fail(key, f"unknown FSDP setting (known: {', '.join(_KEYS)}){hint}")


def _load_config(config: Any) -> dict[str, Any]:
    """``fsdp_config`` as a dict: given as one, as JSON text, or as the path of a JSON file."""
    if config is None:
        return {}
    if isinstance(config, Mapping):
        loaded: Any = dict(config)
    elif isinstance(config, str):
        source = config
        try:
            text = config if config.lstrip().startswith("{") else Path(config).read_text()
            loaded = json.loads(text)
        except OSError as exc:
            raise ArgumentError(f"TrainingArguments.fsdp_config: cannot read {source!r} ({exc})") from None
        except json.JSONDecodeError as exc:
            raise ArgumentError(f"TrainingArguments.fsdp_config: {source!r} is not JSON ({exc})") from None
    else:
        raise ArgumentError(
            "TrainingArguments.fsdp_config: must be a dict, its JSON text or a JSON file's path, "
            f"got {config!r}"
        )
    if not isinstance(loaded, dict) or not all(isinstance(k, str) for k in loaded):
        raise ArgumentError(f"TrainingArguments.fsdp_config: must be a JSON object, got {loaded!r}")
    return {k.removeprefix("fsdp_"): v for k, v in loaded.items()}


def _apply_words(fsdp: Any, config: dict[str, Any]) -> None:
    """transformers' older ``fsdp`` values (strategy words) into ``config``, as transformers does."""
    words = fsdp.split() if isinstance(fsdp, str) else list(fsdp)
    for word in words:
        if not isinstance(word, str):
            raise ArgumentError(f"TrainingArguments.fsdp: {word!r} is not an FSDP option name")
        word = word.lower()
        if word in _STRATEGIES:
            key, value = _STRATEGIES[word]
            config.setdefault(key, value)
        elif word == "offload":
            config.setdefault("cpu_offload", True)
        elif word == "auto_wrap":
            pass  # the default auto_wrap_policy already wraps
        elif word in _FSDP1_STRATEGIES:
            raise ArgumentError(
                f"TrainingArguments.fsdp={fsdp!r}: {word!r} is an FSDP1 sharding strategy; FSDP2 "
                "(fully_shard), the only FSDP here, offers 'full_shard' and 'shard_grad_op'"
            )
        else:
            raise ArgumentError(
                f"TrainingArguments.fsdp={fsdp!r}: unknown option {word!r}; choose among 'full_shard', "
                "'shard_grad_op', 'offload', 'auto_wrap' (or pass fsdp=True and set fsdp_config)"
            )


def settle_fsdp(fsdp: Any, config: Any) -> tuple[bool, dict[str, Any] | None]:
    """``(fsdp, fsdp_config)`` as transformers leaves them: ``fsdp`` a bool, ``fsdp_config`` a dict with
    the strategy words folded in, its options checked (:class:`FsdpOptions`)."""
    if fsdp is None or fsdp is False or fsdp == "" or fsdp == []:
        if config is None:
            return False, None
        loaded = _load_config(config)  # still checked: a bad file is reported now, not when FSDP is on
        logger.warning("TrainingArguments.fsdp_config is given but fsdp is not set: FSDP stays off")
        return False, config if isinstance(config, dict) else loaded
    settled = _load_config(config)
    if isinstance(fsdp, (str, list, tuple)):
        _apply_words(fsdp, settled)
    elif fsdp is not True:
        raise ArgumentError(
            f"TrainingArguments.fsdp: must be True, a strategy name or a list of them, got {fsdp!r}"
        )
    FsdpOptions.from_config(settled)  # a key or value FSDP2 cannot take is refused here
    # the defaults transformers writes into fsdp_config, so that both read back alike
    settled.setdefault("min_num_params", 0)
    if isinstance(settled.get("transformer_layer_cls_to_wrap"), str):
        settled["transformer_layer_cls_to_wrap"] = [settled["transformer_layer_cls_to_wrap"]]
    for key in ("xla", "xla_fsdp_v2", "xla_fsdp_grad_ckpt"):
        settled.setdefault(key, False)
    return True, settled
