"""TrackerWorker: one tracker's calls, in order, on a thread of its own, so the tracker cannot hold up
or take down training.

Training only queues a call (``submit``). A call that raises anything, ``SystemExit`` included,
disables the tracker (one warning names it and the call); a call that runs past its time limit
detaches it (one warning): its thread is left behind and nothing more reaches it. A tracker raising
``KeyboardInterrupt`` is disabled and the interrupt is passed on to the main thread, as a Ctrl-C.
A stuck call is noticed when the next call is queued and while ``flush`` waits, never by a timer.
"""

from __future__ import annotations

import _thread
import atexit
import enum
import logging
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any, NamedTuple

from lifecycle.integrations.limits import TimeLimits

__all__ = ["TrackerWorker", "WorkerState"]

logger = logging.getLogger("lifecycle.integrations")

#: seconds an idle worker thread waits for work before it ends (the next call starts a new one)
IDLE_SECONDS = 5.0
#: the longest a waiting ``submit`` or ``flush`` sleeps before it looks at the running call again
POLL_SECONDS = 0.5


class WorkerState(enum.Enum):
    ACTIVE = "active"
    #: a call raised: nothing more runs but a final call (``finish``, best effort)
    DISABLED = "disabled"
    #: a call ran past its limit: nothing more runs at all
    DETACHED = "detached"


class _Call(NamedTuple):
    method: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    #: runs even once the tracker is disabled (its last chance to close its files)
    final: bool
    #: receives what the call returned, on the worker's thread
    reply: Callable[[Any], None] | None = None


class TrackerWorker:
    """Runs the calls ``submit`` queues on ``tracker``, in order, at most ``capacity`` waiting."""

    def __init__(self, tracker: Any, name: str, limits: TimeLimits, capacity: int = 1000) -> None:
        if capacity < 1:
            raise ValueError(f"a tracker queue holds at least one call, got capacity={capacity!r}")
        self.tracker = tracker
        self.name = name
        self.limits = limits
        self.capacity = capacity
        self.state = WorkerState.ACTIVE
        #: why the tracker was disabled or detached
        self.reason: str | None = None
        #: how many of its calls raised
        self.failures = 0
        self._calls: deque[_Call] = deque()
        self._running: tuple[str, float] | None = None  # method, time.monotonic() at its start
        self._thread: threading.Thread | None = None
        self._warned = False
        self._cond = threading.Condition()
        _WORKERS.add(self)

    def __repr__(self) -> str:
        return f"TrackerWorker({self.name!r}, {self.state.value}, {len(self._calls)} queued)"

    @property
    def active(self) -> bool:
        return self.state is WorkerState.ACTIVE

    def submit(
        self,
        method: str,
        *args: Any,
        final: bool = False,
        reply: Callable[[Any], None] | None = None,
        **kwargs: Any,
    ) -> None:
        """Queue ``tracker.<method>(*args, **kwargs)``; waits only while the queue is full. ``reply``
        receives the call's result once it has run (not if it raised, or the tracker lacks ``method``)."""
        call = _Call(method, args, kwargs, final, reply)
        with self._cond:
            while not self._refuses(call):
                if len(self._calls) < self.capacity:
                    self._calls.append(call)
                    if self._thread is None:
                        self._thread = threading.Thread(
                            target=self._serve, name=f"tracker-{self.name}", daemon=True
                        )
                        self._thread.start()
                    self._cond.notify_all()
                    return
                self._cond.wait(self._poll())

    def flush(self, deadline: float | None = None) -> None:
        """Wait until every queued call has run, each within its own limit; with ``deadline`` (a
        ``time.monotonic()`` time: the end of the run's finish limit), all of them by then."""
        with self._cond:
            while (self._calls or self._running) and self.state is not WorkerState.DETACHED:
                if self._check_overdue():
                    return
                if deadline is not None and time.monotonic() >= deadline:
                    what = f"{self._running[0]}()" if self._running else "a queued call"
                    self._detach(
                        f"{what} was still pending at the end of the {self.limits.finish:g} s finish limit"
                    )
                    return
                wait = self._poll()
                if deadline is not None:
                    wait = min(wait, max(deadline - time.monotonic(), 0.0))
                self._cond.wait(wait)

    # -- under self._cond -------------------------------------------------------------------------
    def _refuses(self, call: _Call) -> bool:
        """Whether ``call`` is turned away (the tracker is out, or has just been found stuck)."""
        if self._check_overdue() or self.state is WorkerState.DETACHED:
            return True
        return self.state is WorkerState.DISABLED and not call.final

    def _check_overdue(self) -> bool:
        """Detach the tracker if its running call is past its limit; whether it was."""
        running = self._running
        if running is None or self.state is WorkerState.DETACHED:
            return False
        method, started = running
        limit = self.limits.of(method)
        if time.monotonic() - started < limit:
            return False
        self._detach(f"{method}() had not returned after {limit:g} s")
        return True

    def _poll(self) -> float:
        """How long to sleep before looking again: until the running call's limit, at most POLL_SECONDS."""
        running = self._running
        if running is None:
            return POLL_SECONDS
        method, started = running
        left = started + self.limits.of(method) - time.monotonic()
        return min(max(left, 0.01), POLL_SECONDS)

    def _detach(self, why: str) -> None:
        dropped = len(self._calls)
        self._calls.clear()
        self.state = WorkerState.DETACHED
        self.reason = self.reason or why
        self._warn(
            "tracker %r is detached: %s; training goes on without it (queued calls dropped: %d)",
            self.name,
            why,
            dropped,
        )
        self._cond.notify_all()

    def _disable(self, call: _Call, exc: BaseException) -> None:
        self.failures += 1
        if self.state is not WorkerState.ACTIVE:
            logger.debug("tracker %r failed again in %s: %r", self.name, call.method, exc)
            return
        self.state = WorkerState.DISABLED
        self.reason = f"{call.method}() raised {type(exc).__name__}: {exc}"
        self._calls = deque(c for c in self._calls if c.final)
        self._warn(
            "tracker %r failed in %s: %s: %s; it is disabled, and training goes on with the other trackers",
            self.name,
            call.method,
            type(exc).__name__,
            exc,
        )

    def _warn(self, message: str, *args: Any) -> None:
        """One warning per tracker; anything after it at debug level."""
        logger.log(logging.DEBUG if self._warned else logging.WARNING, message, *args)
        self._warned = True

    # -- the worker thread ------------------------------------------------------------------------
    def _serve(self) -> None:
        me = threading.current_thread()
        while True:
            with self._cond:
                if self._thread is not me or self.state is WorkerState.DETACHED:
                    return  # left behind by a detach
                if not self._calls and not self._cond.wait_for(lambda: bool(self._calls), IDLE_SECONDS):
                    self._thread = None
                    return
                call = self._calls.popleft()
                self._running = (call.method, time.monotonic())
            error = self._run(call)
            with self._cond:
                self._running = None
                if self.state is WorkerState.DETACHED:
                    return
                if error is not None:
                    self._disable(call, error)
                self._cond.notify_all()

    def _run(self, call: _Call) -> BaseException | None:
        method = getattr(self.tracker, call.method, None)
        if method is None:
            return None
        try:
            result = method(*call.args, **call.kwargs)
            if call.reply is not None:
                call.reply(result)
        except KeyboardInterrupt as exc:
            _thread.interrupt_main()  # a Ctrl-C stops training, wherever it surfaced
            return exc
        except BaseException as exc:  # SystemExit too: a tracker never ends the run
            return exc
        return None


#: every worker alive, so that calls still queued when the interpreter exits are run first
_WORKERS: weakref.WeakSet[TrackerWorker] = weakref.WeakSet()


@atexit.register
def _drain() -> None:
    """At exit, run what trackers still have queued (each call within its limit)."""
    for worker in list(_WORKERS):
        worker.flush()
