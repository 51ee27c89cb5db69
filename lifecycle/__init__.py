"""lifecycle: PyTorch training as an explicit, declarative state machine."""

from typing import TYPE_CHECKING

from lifecycle.args import ArgumentError, TrainingArguments
from lifecycle.callbacks import (
    HF_EVENTS,
    DefaultFlowCallback,
    EarlyStoppingCallback,
    Event,
    PrinterCallback,
    ProgressCallback,
    TrainerCallback,
    on,
)
from lifecycle.checkpoint import CheckpointError, verify_checkpoint
from lifecycle.control import TrainerControl
from lifecycle.default import TRAINING_LIFECYCLE
from lifecycle.dispatch import CallbackError, Dispatcher
from lifecycle.fsdp_options import FsdpOptions
from lifecycle.graph import GraphvizNotFound, LifecycleGraph
from lifecycle.integrations import (
    AimTracker,
    AzureMLTracker,
    ClearMLTracker,
    CodeCarbonTracker,
    CometTracker,
    DagsHubTracker,
    DVCLiveTracker,
    FlyteTracker,
    GeneralTracker,
    JSONLTracker,
    MLflowTracker,
    NeptuneTracker,
    SwanLabTracker,
    TensorBoardTracker,
    TrackerCallback,
    TrackioTracker,
    WandBTracker,
    on_main_process,
)
from lifecycle.machine import Lifecycle, LifecycleError, State, Transition
from lifecycle.outputs import EvalPrediction, PredictionOutput, TrainOutput
from lifecycle.state import StateFileError, TrainerState
from lifecycle.trace import Tracer

if TYPE_CHECKING:
    from lifecycle.data import EpochSampler
    from lifecycle.nonfinite import NonFiniteError
    from lifecycle.shards import EvalShards
    from lifecycle.trainer import Trainer

__version__ = "0.1.0"

__all__ = [
    "HF_EVENTS",
    "TRAINING_LIFECYCLE",
    "AimTracker",
    "ArgumentError",
    "AzureMLTracker",
    "CallbackError",
    "CheckpointError",
    "ClearMLTracker",
    "CodeCarbonTracker",
    "CometTracker",
    "DVCLiveTracker",
    "DagsHubTracker",
    "DefaultFlowCallback",
    "Dispatcher",
    "EarlyStoppingCallback",
    "EpochSampler",
    "EvalPrediction",
    "EvalShards",
    "Event",
    "FlyteTracker",
    "FsdpOptions",
    "GeneralTracker",
    "GraphvizNotFound",
    "JSONLTracker",
    "Lifecycle",
    "LifecycleError",
    "LifecycleGraph",
    "MLflowTracker",
    "NeptuneTracker",
    "NonFiniteError",
    "PredictionOutput",
    "PrinterCallback",
    "ProgressCallback",
    "State",
    "StateFileError",
    "SwanLabTracker",
    "TensorBoardTracker",
    "Tracer",
    "TrackerCallback",
    "TrackioTracker",
    "TrainOutput",
    "Trainer",
    "TrainerCallback",
    "TrainerControl",
    "TrainerState",
    "TrainingArguments",
    "Transition",
    "WandBTracker",
    "on",
    "on_main_process",
    "verify_checkpoint",
]


# These import torch (about a second): commands that need no tensors never pay for it.
_NEEDS_TORCH = {
    "Trainer": "lifecycle.trainer",
    "EpochSampler": "lifecycle.data",
    "NonFiniteError": "lifecycle.nonfinite",
    "EvalShards": "lifecycle.shards",
}


def __getattr__(name: str) -> object:
    if name in _NEEDS_TORCH:
        import importlib

        return getattr(importlib.import_module(_NEEDS_TORCH[name]), name)
    raise AttributeError(f"module 'lifecycle' has no attribute {name!r}")
