"""Signals that end a run at the next step boundary, with a checkpoint: SIGTERM (what schedulers and spot
instances send before they take the machine), any other signal the arguments name (SLURM's SIGUSR1),
and Ctrl-C.

The handler only notes the signal. At the next ``boundary`` the run asks for a checkpoint (Ctrl-C
only when ``save_on_interrupt``), the lifecycle writes it as any other, and at the boundary after
it the run stops with :class:`TrainingPreempted` (a ``SystemExit``: the process ends with the message)
or :class:`TrainingInterrupted` (a ``KeyboardInterrupt``). On the way out the trainer finishes its
trackers and writes its trace, as for any run that raises. A second Ctrl-C interrupts at once.
Ctrl-C waits for a boundary only while steps are taken (from ``train_begin`` to ``finish``); before
and after, it interrupts at once. Handlers are installed by ``train()`` in the main thread only, and
put back when it returns.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Sequence
from types import FrameType, TracebackType
from typing import Any

__all__ = ["SignalWatch", "TrainingInterrupted", "TrainingPreempted"]


class TrainingPreempted(SystemExit):
    """Training stopped on a preemption signal, after saving a checkpoint; resume from it."""


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on Ctrl-C at a step boundary (after a checkpoint when ``save_on_interrupt``)."""


def signal_number(name: str) -> int:
    """``"SIGTERM"`` (or ``"TERM"``) as its number; an unknown name is a ``ValueError`` naming it."""
    full = name if name.startswith("SIG") else f"SIG{name}"
    number = getattr(signal, full, None)
    if not isinstance(number, int):
        raise ValueError(f"unknown signal {name!r} (e.g. 'SIGTERM', 'SIGUSR1')")
    return number


class SignalWatch:
    """Notes the signals that end a run; ``received`` is the first one's number, until :meth:`reset`."""

    def __init__(self, preemption: Sequence[str], save_on_interrupt: bool):
        self.preemption = tuple(signal_number(name) for name in preemption)
        self.save_on_interrupt = save_on_interrupt
        self.received: int | None = None
        self.deferring = False
        """Steps are being taken: Ctrl-C waits for the next boundary (else it interrupts at once)."""
        self._previous: dict[int, Any] = {}

    @property
    def wants_save(self) -> bool:
        """A checkpoint is written before stopping: always on preemption, on Ctrl-C when asked."""
        return self.received != signal.SIGINT or self.save_on_interrupt

    def note(self, signum: int) -> None:
        """Record ``signum`` (the first signal wins; a rank may learn it from another)."""
        if self.received is None:
            self.received = signum

    def stop(self, step: int, checkpoint: str | None) -> BaseException:
        """The exception that ends the run at ``step`` (``checkpoint``: the one written for it)."""
        name = signal.Signals(self.received or signal.SIGTERM).name
        saved = (
            f"; {checkpoint} holds it: resume with train(resume_from_checkpoint=True)" if checkpoint else ""
        )
        if self.received == signal.SIGINT:
            return TrainingInterrupted(f"training interrupted (SIGINT) at global_step {step}{saved}")
        return TrainingPreempted(f"training stopped by {name} at global_step {step}{saved}")

    def reset(self) -> None:
        self.received = None
        self.deferring = False

    # -- installing the handlers ------------------------------------------------------------------
    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGINT and (self.received == signal.SIGINT or not self.deferring):
            raise KeyboardInterrupt  # a second Ctrl-C, or one outside the steps, does not wait
        self.note(signum)

    def __enter__(self) -> SignalWatch:
        self.reset()
        if threading.current_thread() is threading.main_thread():
            for signum in (*self.preemption, signal.SIGINT):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()
