"""TrackerCallback: the one bridge from the training lifecycle to every tracker.

``train_begin`` (which fires once a resumed run has its state back) opens the trackers at
``state.global_step`` and hands them the run's configuration; ``log`` hands every tracker the logs
(training, evaluation and test metrics alike, at ``state.global_step``); ``train_end`` finishes them,
and so does the trainer when a run raises.

Each tracker's calls run in order on a thread of its own (:class:`~lifecycle.integrations.worker.
TrackerWorker`): training only queues them, and waits only for the trackers to open (with Python's
random numbers kept as they were, whatever a tracker library draws as it opens). A thread per
tracker, not one for all, so that a tracker that hangs holds up no other until it is detached. A
tracker that raises is disabled, one that hangs past its time limit is detached, one warning each,
and training goes on with the others. Before a checkpoint is written and at the end, the callback
waits for every queued call, so a checkpoint matches what the trackers hold and nothing logged is
lost.

The callback is stateful: each checkpoint keeps ``{tracker name: run identity}`` (what the trackers'
``run_identity()`` returned). A training resumed from it hands each tracker its identity
(``continue_run``) before the tracker opens, then ``rewind``: the run goes on where the checkpoint
left it. An evaluation after training reopens the trackers on the runs training used; a new training
(not resumed) starts new runs.
"""

from __future__ import annotations

import inspect
import os
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from lifecycle.callbacks import TrainerCallback
from lifecycle.checkpoint.folder import PREFIX
from lifecycle.integrations.base import is_main_process
from lifecycle.integrations.limits import TimeLimits
from lifecycle.integrations.values import loggable, rewrite_names, run_config, scalar_config, wants_scalars
from lifecycle.integrations.worker import TrackerWorker

__all__ = ["TrackerCallback", "tracker_name"]


def tracker_name(tracker: Any) -> str:
    """The name a tracker goes by (its class name where it sets none)."""
    return str(getattr(tracker, "name", None) or type(tracker).__name__)


def _takes_history(method: Any) -> bool:
    """Whether a tracker's ``rewind`` accepts ``history=`` (the resumed run's ``log_history``)."""
    try:
        parameters = inspect.signature(method).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == "history" or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


class TrackerCallback(TrainerCallback):
    """Reports the run to ``trackers`` (objects shaped like :class:`~lifecycle.GeneralTracker`).

    ``timeout`` bounds each ``log`` (and ``store_init_configuration``, ``rewind``; default
    ``$LIFECYCLE_TRACKER_TIMEOUT``, else 30 s); ``finish_timeout`` bounds ``start``, and the end: the
    calls still queued and ``finish`` together (default ``$LIFECYCLE_TRACKER_FINISH_TIMEOUT``, else
    120 s). At most ``queue_size`` calls wait per tracker; training waits while a tracker's queue is full.
    """

    def __init__(
        self,
        trackers: Iterable[Any],
        *,
        timeout: float | None = None,
        finish_timeout: float | None = None,
        queue_size: int = 1000,
    ) -> None:
        self.trackers = list(trackers)
        self.limits = TimeLimits.resolve(timeout, finish_timeout)
        self.queue_size = queue_size
        self._workers: dict[int, TrackerWorker] = {}
        self._open: set[int] = set()
        self._skipped: set[str] = set()
        self._config: dict[str, Any] | None = None
        self._training = False
        #: the run each tracker reports into, by tracker name (from ``run_identity()``)
        self._identities: dict[str, dict[str, Any]] = {}
        #: the identities of the checkpoint a training resumes from, until that training begins
        self._restored: dict[str, dict[str, Any]] | None = None

    def __repr__(self) -> str:
        return f"TrackerCallback({', '.join(map(tracker_name, self.trackers))})"

    @property
    def failures(self) -> dict[str, int]:
        """How many calls of each tracker raised, by tracker name (trackers that never raised left out)."""
        return {w.name: w.failures for w in self._workers.values() if w.failures}

    @property
    def disabled(self) -> dict[str, str]:
        """The trackers out of the run, by name: why (the call that raised, or the one that hung)."""
        return {w.name: w.reason for w in self._workers.values() if w.reason is not None}

    def state_dict(self) -> dict[str, dict[str, Any]]:
        """``{tracker name: run identity}`` of the trackers that name their run."""
        named = list(self._identities.items())  # one step: a detached tracker's thread may still add one
        return {name: dict(identity) for name, identity in named}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """The identities the resumed training's trackers continue (at its ``train_begin``)."""
        if not isinstance(state, Mapping) or not all(
            isinstance(name, str) and isinstance(identity, Mapping) for name, identity in state.items()
        ):
            raise ValueError(f"expected {{tracker name: {{run identity}}}}, got {state!r}")
        self._restored = {name: dict(identity) for name, identity in state.items()}

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        self._config = run_config(args, model)
        self._training = True
        self._identities, self._restored = self._restored or {}, None  # resumed: the same runs; else new
        for tracker in self._reporting(state):
            if id(tracker) in self._open and tracker_name(tracker) in self._identities:
                self._open.discard(id(tracker))  # opened by an evaluation before: reopen on the resumed run
                self._worker(tracker).submit("finish", final=True)
            self._continue(tracker)
            rewind = getattr(tracker, "rewind", None)
            if rewind is not None:  # training (re)starts at global_step: trackers drop anything later
                history: dict[str, Any] = (
                    {"history": list(state.log_history)} if _takes_history(rewind) else {}
                )
                self._worker(tracker).submit("rewind", state.global_step, **history)
        self._open_all(state)

    def on_log(
        self, args: Any, state: Any, control: Any, logs: Any = None, model: Any = None, **kwargs: Any
    ) -> None:
        if not logs:
            return
        if self._config is None:  # logs before any training: ``trainer.evaluate()`` on its own
            self._config = run_config(args, model)
        values = loggable(logs, self._skipped)
        renamed = rewrite_names(values)
        self._open_all(state)
        for tracker in self._reporting(state):
            payload = renamed if getattr(tracker, "rewrite_metric_names", True) else values
            self._worker(tracker).submit("log", dict(payload), step=state.global_step)
        if not self._training:  # an evaluation on its own: its logs are in place when it returns
            self.flush(state)

    def on_to_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Before a checkpoint is written, the trackers hold everything logged so far, and the
        callback's state names the run of each."""
        for tracker in self._reporting(state):
            if id(tracker) in self._open:
                self._ask_identity(tracker)
        self.flush(state)

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Once a checkpoint is written, trackers with ``save_checkpoint(folder)`` get its folder (to
        upload or copy; done before the next checkpoint is written, so rotation cannot remove it first)."""
        folder = os.path.join(args.output_dir, f"{PREFIX}{state.global_step}")
        for tracker in self._reporting(state):
            if id(tracker) in self._open and callable(getattr(tracker, "save_checkpoint", None)):
                self._worker(tracker).submit("save_checkpoint", folder)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.finish(state)

    def flush(self, state: Any) -> None:
        """Wait until every tracker has run its queued calls (each within its time limit), and an open
        tracker with a ``flush()`` of its own has written out what its library buffers."""
        for tracker in self._reporting(state):
            if id(tracker) in self._open and callable(getattr(tracker, "flush", None)):
                self._worker(tracker).submit("flush")
        for tracker in self._reporting(state):
            self._worker(tracker).flush()

    def finish(self, state: Any) -> None:
        """Finish every open tracker: at ``train_end``, and when a run fails (so its files are whole).

        The trackers run what they still have queued, then ``finish()``, side by side; any not done
        within the finish time limit is detached. A disabled tracker still gets its ``finish()``.
        """
        self._training = False
        finishing = []
        for tracker in self._reporting(state):
            if id(tracker) in self._open:
                self._open.discard(id(tracker))
                self._ask_identity(tracker)  # kept: an evaluation after training reopens this run
                worker = self._worker(tracker)
                worker.submit("finish", final=True)
                finishing.append(worker)
        deadline = time.monotonic() + self.limits.finish
        for worker in finishing:
            worker.flush(deadline)

    def _reporting(self, state: Any) -> Iterator[Any]:
        """The trackers that act in this process."""
        main = state.is_world_process_zero and is_main_process()
        return (t for t in self.trackers if main or not getattr(t, "main_process_only", True))

    def _worker(self, tracker: Any) -> TrackerWorker:
        worker = self._workers.get(id(tracker))
        if worker is None:
            worker = TrackerWorker(tracker, tracker_name(tracker), self.limits, self.queue_size)
            self._workers[id(tracker)] = worker
        return worker

    def _continue(self, tracker: Any) -> None:
        """Before ``tracker`` opens: the run it reported into, if it named one (``continue_run``)."""
        identity = self._identities.get(tracker_name(tracker))
        if identity is not None and id(tracker) not in self._open:
            self._worker(tracker).submit("continue_run", dict(identity))

    def _ask_identity(self, tracker: Any) -> None:
        """Have ``tracker`` name its run (``run_identity()``, on its own thread) into ``_identities``."""
        self._worker(tracker).submit("run_identity", reply=self._remember(tracker_name(tracker)))

    def _remember(self, name: str) -> Callable[[Any], None]:
        def remember(identity: Any) -> None:
            if identity is not None:
                self._identities[name] = dict(identity)

        return remember

    def _open_all(self, state: Any) -> None:
        """Open the trackers not open yet (each on the run it reported into before, if any), hand them
        the configuration, and wait until they are open. Python's random numbers stay as they were:
        tracker libraries draw from ``random`` as they open (Comet does), and training must draw the
        numbers it would draw without them, resumed or not."""
        opening = [t for t in self._reporting(state) if id(t) not in self._open]
        if not opening:
            return
        numbers = random.getstate()
        try:
            for tracker in opening:
                if not self._training:  # an evaluation: into the run training used, if there was one
                    self._continue(tracker)
                self._open.add(id(tracker))
                worker = self._worker(tracker)
                worker.submit("start")
                config = dict(self._config or {})
                worker.submit(
                    "store_init_configuration", scalar_config(config) if wants_scalars(tracker) else config
                )
                self._ask_identity(tracker)
            for tracker in opening:
                self._worker(tracker).flush()
        finally:
            random.setstate(numbers)
