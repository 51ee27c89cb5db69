"""The tracker protocol, shaped like Accelerate's ``GeneralTracker``.

A tracker names itself (``name``), says whether it needs a folder (``requires_logging_directory``),
exposes the object of the library it wraps (``tracker``), and receives the run's configuration once
(``store_init_configuration``), metrics as they come (``log``) and the end of the run (``finish``).
A tracker whose runs can be continued names its run (``run_identity``) and reopens a named one
(``continue_run``): the bridge keeps the names in each checkpoint, so a resumed training, or an
evaluation after training, reports into the same run.
A subclass written for Accelerate works here unchanged; see ``docs/trackers.md``.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, TypeVar

__all__ = ["GeneralTracker", "is_main_process", "on_main_process"]

F = TypeVar("F", bound=Callable[..., Any])


def is_main_process() -> bool:
    """Rank 0 of ``torch.distributed`` when a group is up, else ``RANK`` from the launcher, else True."""
    torch = sys.modules.get("torch")  # never import torch just to learn the rank
    if torch is not None and torch.distributed.is_available() and torch.distributed.is_initialized():
        return bool(torch.distributed.get_rank() == 0)
    return int(os.environ.get("RANK", "0")) == 0


def on_main_process(method: F) -> F:
    """Run ``method`` on the main process only when its tracker has ``main_process_only`` (as Accelerate)."""

    @functools.wraps(method)
    def guarded(self: Any, *args: Any, **kwargs: Any) -> Any:
        if getattr(self, "main_process_only", True) and not is_main_process():
            return None
        return method(self, *args, **kwargs)

    return guarded  # type: ignore[return-value]


class GeneralTracker:
    """Base class of every tracker: override what your tracking library needs, the rest are no-ops.

    Required in a subclass: ``name`` and ``requires_logging_directory`` (class attributes), the
    ``tracker`` property, and usually ``__init__``, ``store_init_configuration`` and ``log``.
    """

    #: how ``report_to`` and ``trainer.get_tracker`` refer to the tracker
    name: ClassVar[str]
    #: whether the constructor takes a logging folder as its second argument
    requires_logging_directory: ClassVar[bool]
    #: whether only the main process (rank 0) reports
    main_process_only: ClassVar[bool] = True
    #: whether metric names arrive as ``train/loss``, ``eval/loss`` (else as logged: ``loss``, ``eval_loss``)
    rewrite_metric_names: ClassVar[bool] = True

    @classmethod
    def from_args(cls, args: Any) -> GeneralTracker:
        """The tracker for a run: ``cls(run_name, logging_dir)`` or ``cls(run_name)``, as in Accelerate."""
        if cls.requires_logging_directory:
            return cls(args.run_name, args.logging_dir or args.output_dir)  # type: ignore[call-arg]
        return cls(args.run_name)  # type: ignore[call-arg]

    @property
    def tracker(self) -> Any:
        """The tracking library's own object (a writer, an experiment, a run); None before ``start``."""
        return None

    def start(self) -> None:
        """Open the run: called once before the first configuration or metrics reach the tracker."""

    def store_init_configuration(self, values: dict[str, Any]) -> None:
        """Record the run's configuration (hyperparameters): values are JSON-like, mostly plain scalars."""

    def log(self, values: dict[str, Any], step: int | None = None, **kwargs: Any) -> None:
        """Record ``values`` (numbers, or strings for text) at ``step``."""

    def finish(self) -> None:
        """Close the run: flush, upload, release files."""

    def run_identity(self) -> dict[str, Any] | None:
        """JSON values naming this tracker's run, so a later process continues it; None: no identity
        (or not started yet)."""
        return None

    def continue_run(self, identity: Mapping[str, Any]) -> None:
        """Called before ``start``/``store_init_configuration`` in a resumed training (or an evaluate
        after train in the same process): the next start opens the run ``identity`` names."""
