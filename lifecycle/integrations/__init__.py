"""Trackers: one protocol (:class:`GeneralTracker`), one bridge (:class:`TrackerCallback`), thin adapters.

``TrainingArguments.report_to`` picks them: None (the default) keeps a local metrics log,
``<output_dir>/metrics.jsonl``; ``"none"`` reports nowhere; ``"all"`` uses every installed tracker
that is set up; otherwise a name, a tracker class or instance, or a list of those. Tracker libraries
are imported when a tracker starts, never on ``import lifecycle``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lifecycle.integrations.aim import AimTracker
from lifecycle.integrations.azureml import AzureMLTracker
from lifecycle.integrations.base import GeneralTracker, is_main_process, on_main_process
from lifecycle.integrations.callback import TrackerCallback, tracker_name
from lifecycle.integrations.clearml import ClearMLTracker
from lifecycle.integrations.codecarbon import CodeCarbonTracker
from lifecycle.integrations.comet import CometTracker
from lifecycle.integrations.dagshub import DagsHubTracker
from lifecycle.integrations.dvclive import DVCLiveTracker
from lifecycle.integrations.flyte import FlyteTracker
from lifecycle.integrations.jsonl import METRICS_FILE, JSONLTracker, read_jsonl
from lifecycle.integrations.mlflow import MLflowTracker
from lifecycle.integrations.neptune import NeptuneTracker
from lifecycle.integrations.registry import KNOWN_TRACKERS, KnownTracker, canonical_name, resolve_trackers
from lifecycle.integrations.swanlab import SwanLabTracker
from lifecycle.integrations.tensorboard import TensorBoardTracker
from lifecycle.integrations.trackio import TrackioTracker
from lifecycle.integrations.values import rewrite_names
from lifecycle.integrations.wandb import WandBTracker

__all__ = [
    "KNOWN_TRACKERS",
    "METRICS_FILE",
    "AimTracker",
    "AzureMLTracker",
    "ClearMLTracker",
    "CodeCarbonTracker",
    "CometTracker",
    "DVCLiveTracker",
    "DagsHubTracker",
    "FlyteTracker",
    "GeneralTracker",
    "JSONLTracker",
    "KnownTracker",
    "MLflowTracker",
    "NeptuneTracker",
    "SwanLabTracker",
    "TensorBoardTracker",
    "TrackerCallback",
    "TrackioTracker",
    "WandBTracker",
    "find_tracker",
    "is_main_process",
    "on_main_process",
    "read_jsonl",
    "resolve_trackers",
    "rewrite_names",
    "tracker_callbacks",
]


def tracker_callbacks(args: Any) -> list[TrackerCallback]:
    """The callbacks that report this run to the trackers ``args.report_to`` names (one bridge for all)."""
    trackers = resolve_trackers(args.report_to, args)
    return [TrackerCallback(trackers)] if trackers else []


def find_tracker(callbacks: Sequence[Any], name: str, *, unwrap: bool = False) -> Any:
    """The tracker called ``name`` (aliases allowed: ``comet``), or its native object with ``unwrap=True``."""
    wanted = canonical_name(name)
    names = []
    for callback in callbacks:
        if not isinstance(callback, TrackerCallback):
            continue
        for tracker in callback.trackers:
            names.append(tracker_name(tracker))
            if canonical_name(tracker_name(tracker)) == wanted:
                return getattr(tracker, "tracker", None) if unwrap else tracker
    raise KeyError(f"no tracker named {name!r}; this trainer reports to: {', '.join(names) or 'no tracker'}")
