"""TrackerCallback: the one bridge from the training lifecycle to every tracker.

``train_begin`` (which fires once a resumed run has its state back) opens the trackers at
``state.global_step`` and hands them the run's configuration; ``log`` hands every tracker the logs
(training, evaluation and test metrics alike, at ``state.global_step``); ``train_end`` finishes them,
and so does the trainer when a run raises.
A tracker that raises never stops training: the others still receive everything, and one warning
names the tracker and its error.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import Any

from lifecycle.callbacks import TrainerCallback
from lifecycle.integrations.base import is_main_process
from lifecycle.integrations.values import loggable, rewrite_names, run_config

__all__ = ["TrackerCallback", "tracker_name"]

logger = logging.getLogger("lifecycle.integrations")


def tracker_name(tracker: Any) -> str:
    """The name a tracker goes by (its class name where it sets none)."""
    return str(getattr(tracker, "name", None) or type(tracker).__name__)


class TrackerCallback(TrainerCallback):
    """Reports the run to ``trackers`` (objects shaped like :class:`~lifecycle.GeneralTracker`)."""

    def __init__(self, trackers: Iterable[Any]) -> None:
        self.trackers = list(trackers)
        #: how many calls of each tracker raised, by tracker name
        self.failures: dict[str, int] = {}
        self._open: set[int] = set()
        self._skipped: set[str] = set()
        self._config: dict[str, Any] | None = None

    def __repr__(self) -> str:
        return f"TrackerCallback({', '.join(map(tracker_name, self.trackers))})"

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        self._config = run_config(args, model)
        self._start_training(state)

    def on_log(
        self, args: Any, state: Any, control: Any, logs: Any = None, model: Any = None, **kwargs: Any
    ) -> None:
        if not logs:
            return
        if self._config is None:  # logs before any training: ``trainer.evaluate()`` on its own
            self._config = run_config(args, model)
        values = loggable(logs, self._skipped)
        renamed = rewrite_names(values)
        for tracker in self._reporting(state):
            self._ensure_open(tracker)
            payload = renamed if getattr(tracker, "rewrite_metric_names", True) else values
            self._attempt(tracker, "log", dict(payload), step=state.global_step)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.finish(state)

    def finish(self, state: Any) -> None:
        """Finish every open tracker: at ``train_end``, and when a run fails (so its files are whole)."""
        for tracker in self._reporting(state):
            if id(tracker) in self._open:
                self._open.discard(id(tracker))
                self._attempt(tracker, "finish")

    def _start_training(self, state: Any) -> None:
        """Training (re)starts at ``state.global_step``: trackers drop anything later, then open."""
        for tracker in self._reporting(state):
            self._attempt(tracker, "rewind", state.global_step)
            self._ensure_open(tracker)

    def _reporting(self, state: Any) -> Iterator[Any]:
        """The trackers that act in this process."""
        main = state.is_world_process_zero and is_main_process()
        return (t for t in self.trackers if main or not getattr(t, "main_process_only", True))

    def _ensure_open(self, tracker: Any) -> None:
        if id(tracker) in self._open:
            return
        self._open.add(id(tracker))
        self._attempt(tracker, "start")
        self._attempt(tracker, "store_init_configuration", dict(self._config or {}))

    def _attempt(self, tracker: Any, method: str, *args: Any, **kwargs: Any) -> None:
        """Call ``tracker.<method>`` if it exists; a first exception is a warning, later ones debug lines."""
        call = getattr(tracker, method, None)
        if call is None:
            return
        try:
            call(*args, **kwargs)
        except Exception as exc:
            name = tracker_name(tracker)
            count = self.failures[name] = self.failures.get(name, 0) + 1
            if count == 1:
                logger.warning(
                    "tracker %r failed in %s: %s: %s; training goes on and the other trackers still report "
                    "(later failures of %r are logged at debug level)",
                    name,
                    method,
                    type(exc).__name__,
                    exc,
                    name,
                )
            else:
                logger.debug("tracker %r failed again in %s: %r", name, method, exc)
