"""The trackers ``report_to`` can name, what each needs installed, and ``report_to`` made into trackers."""

from __future__ import annotations

import enum
import importlib
import importlib.util
import logging
from collections.abc import Iterable
from typing import Any

import attrs

from lifecycle.args import ArgumentError

__all__ = ["KNOWN_TRACKERS", "KnownTracker", "canonical_name", "installed", "resolve_trackers"]

logger = logging.getLogger("lifecycle.integrations")


@attrs.frozen
class KnownTracker:
    """A tracker ``report_to`` knows by name: the module it needs importable, and the extra providing it."""

    name: str
    module: str
    extra: str | None
    adapter: str | None = None  # "module:Class" under lifecycle.integrations; None: recognized, not built in
    aliases: tuple[str, ...] = ()

    def adapter_class(self) -> type[Any]:
        module, _, cls = (self.adapter or "").partition(":")
        return getattr(importlib.import_module(f"lifecycle.integrations.{module}"), cls)


#: every tracker name Hugging Face and Accelerate use, plus ``jsonl``, the local metrics log
KNOWN_TRACKERS: tuple[KnownTracker, ...] = (
    KnownTracker("jsonl", "json", None, "jsonl:JSONLTracker"),
    KnownTracker(
        "tensorboard", "tensorboardX", "tensorboard", "tensorboard:TensorBoardTracker", ("tensorboardx", "tb")
    ),
    KnownTracker("comet_ml", "comet_ml", "comet", "comet:CometTracker", ("comet", "cometml")),
    KnownTracker("wandb", "wandb", "wandb", "wandb:WandBTracker", ("weights_and_biases",)),
    KnownTracker("mlflow", "mlflow", "mlflow", "mlflow:MLflowTracker"),
    KnownTracker("neptune", "neptune", "neptune", "neptune:NeptuneTracker"),
    KnownTracker("azure_ml", "azureml.core", "azureml", "azureml:AzureMLTracker", ("azureml",)),
    KnownTracker("codecarbon", "codecarbon", "codecarbon", "codecarbon:CodeCarbonTracker"),
    KnownTracker("clearml", "clearml", "clearml", "clearml:ClearMLTracker"),
    KnownTracker("dagshub", "dagshub", "dagshub", "dagshub:DagsHubTracker"),
    KnownTracker("flyte", "flytekit", "flyte", "flyte:FlyteTracker", ("flytekit",)),
    KnownTracker("dvclive", "dvclive", "dvclive", "dvclive:DVCLiveTracker"),
    KnownTracker("aim", "aim", "aim", "aim:AimTracker"),
    KnownTracker("swanlab", "swanlab", "swanlab", "swanlab:SwanLabTracker"),
    KnownTracker("trackio", "trackio", "trackio", "trackio:TrackioTracker"),
)

_BY_NAME = {alias: t for t in KNOWN_TRACKERS for alias in (t.name, *t.aliases)}


def canonical_name(name: str) -> str:
    """``comet`` -> ``comet_ml``; a name no known tracker uses comes back as given."""
    known = _BY_NAME.get(name.strip().lower())
    return known.name if known is not None else name


def installed(module: str) -> bool:
    """Whether ``module`` can be imported (found without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _known(name: str) -> KnownTracker:
    known = _BY_NAME.get(name.strip().lower())
    if known is None:
        names = ", ".join(sorted(t.name for t in KNOWN_TRACKERS))
        raise ArgumentError(
            f"TrainingArguments.report_to: unknown tracker {name!r}; known trackers: {names} "
            "(or pass a GeneralTracker subclass or instance)"
        )
    return known


def _from_name(name: str, args: Any) -> Any:
    known = _known(name)
    if not installed(known.module):
        raise ArgumentError(
            f"TrainingArguments.report_to: the {known.name!r} tracker needs "
            f"{known.module.split('.')[0]!r}: pip install 'torch-lifecycle[{known.extra}]'"
        )
    if known.adapter is None:
        raise ArgumentError(
            f"TrainingArguments.report_to: {known.name!r} is a known tracker without a built-in adapter "
            "yet; write a GeneralTracker for it (see docs/trackers.md) and pass it in report_to"
        )
    return known.adapter_class().from_args(args)


def _everything(args: Any) -> list[Any]:
    """``report_to="all"``: every built-in tracker that is installed and set up; one log line says
    which were chosen and why each other known tracker was left out."""
    found, left_out = [], []
    for known in KNOWN_TRACKERS:
        if not installed(known.module):
            left_out.append(f"{known.name} (not installed: torch-lifecycle[{known.extra}])")
        elif known.adapter is None:
            left_out.append(f"{known.name} (no built-in adapter)")
        elif not getattr(cls := known.adapter_class(), "configured", lambda: True)():
            left_out.append(
                f"{known.name} (not set up: {getattr(cls, 'needs_setup', 'see docs/trackers.md')})"
            )
        else:
            found.append(cls.from_args(args))
    logger.info(
        'report_to="all" chose: %s; left out: %s',
        ", ".join(t.name for t in found) or "none",
        "; ".join(left_out) or "none",
    )
    return found


def _check_shape(item: Any, what: str) -> None:
    missing = [attr for attr in ("name", "requires_logging_directory", "log") if not hasattr(item, attr)]
    if missing:
        raise ArgumentError(
            f"TrainingArguments.report_to: {what} is not a tracker: it lacks {', '.join(missing)} "
            "(subclass lifecycle.GeneralTracker; see docs/trackers.md)"
        )


def _from_class(cls: type[Any], args: Any) -> Any:
    _check_shape(cls, f"class {cls.__name__}")
    if hasattr(cls, "from_args"):
        return cls.from_args(args)
    if cls.requires_logging_directory:  # Accelerate's convention: (run name, logging folder)
        return cls(args.run_name, args.logging_dir or args.output_dir)
    return cls(args.run_name)


def resolve_trackers(report_to: Any, args: Any) -> list[Any]:
    """The trackers ``report_to`` asks for: None = the local metrics log only; ``"none"`` = no tracker."""
    if report_to is None:
        report_to = ["jsonl"]
    items: Iterable[Any] = (
        [report_to] if isinstance(report_to, str) or not isinstance(report_to, Iterable) else report_to
    )
    trackers: list[Any] = []
    for item in items:
        if isinstance(item, enum.Enum) and isinstance(item.value, str):
            item = item.value  # Accelerate's LoggerType
        if isinstance(item, str):
            if item.strip().lower() == "none":
                continue
            trackers.extend(_everything(args) if item.strip().lower() == "all" else [_from_name(item, args)])
        elif isinstance(item, type):
            trackers.append(_from_class(item, args))
        else:
            _check_shape(item, repr(item))
            trackers.append(item)
    return _unique(trackers)


def _unique(trackers: list[Any]) -> list[Any]:
    """One tracker per name (``["all", "tensorboard"]`` gives one TensorBoard), first one kept."""
    seen: set[str] = set()
    kept = []
    for tracker in trackers:
        key = canonical_name(str(getattr(tracker, "name", "")))
        if key not in seen:
            seen.add(key)
            kept.append(tracker)
    return kept
