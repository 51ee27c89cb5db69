"""Callbacks: the base class, ``@on``, and the built-in ones."""

from lifecycle.callbacks.base import HF_EVENTS, Event, TrainerCallback, on
from lifecycle.callbacks.display import PrinterCallback, ProgressCallback
from lifecycle.callbacks.early_stopping import EarlyStoppingCallback
from lifecycle.callbacks.flow import DefaultFlowCallback

__all__ = [
    "HF_EVENTS",
    "DefaultFlowCallback",
    "EarlyStoppingCallback",
    "Event",
    "PrinterCallback",
    "ProgressCallback",
    "TrainerCallback",
    "on",
]
