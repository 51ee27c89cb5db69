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
from lifecycle.checkpoint import CheckpointError
from lifecycle.control import TrainerControl
from lifecycle.default import TRAINING_LIFECYCLE
from lifecycle.dispatch import CallbackError, Dispatcher
from lifecycle.machine import Lifecycle, LifecycleError, State, Transition
from lifecycle.outputs import EvalPrediction, PredictionOutput, TrainOutput
from lifecycle.state import TrainerState

if TYPE_CHECKING:
    from lifecycle.trainer import Trainer

__version__ = "0.1.0"

__all__ = [
    "HF_EVENTS",
    "TRAINING_LIFECYCLE",
    "ArgumentError",
    "CallbackError",
    "CheckpointError",
    "DefaultFlowCallback",
    "Dispatcher",
    "EarlyStoppingCallback",
    "EvalPrediction",
    "Event",
    "Lifecycle",
    "LifecycleError",
    "PredictionOutput",
    "PrinterCallback",
    "ProgressCallback",
    "State",
    "TrainOutput",
    "Trainer",
    "TrainerCallback",
    "TrainerControl",
    "TrainerState",
    "TrainingArguments",
    "Transition",
    "on",
]


def __getattr__(name: str) -> object:
    # Trainer imports torch (about a second); commands that need no tensors never pay for it.
    if name == "Trainer":
        from lifecycle.trainer import Trainer

        return Trainer
    raise AttributeError(f"module 'lifecycle' has no attribute {name!r}")
