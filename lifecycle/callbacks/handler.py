"""The trainer's callbacks in order, and the lifecycle compiled with them (``trainer.callback_handler``).

As in transformers, ``add_callback``/``pop_callback``/``remove_callback`` change the list; here each
change also compiles the lifecycle again (:mod:`lifecycle.dispatch`), keeping where the machine stands
and its counts.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from lifecycle.callbacks.base import TrainerCallback
from lifecycle.dispatch import Dispatcher, DispatchMode, Runner
from lifecycle.machine import Lifecycle

if TYPE_CHECKING:
    from lifecycle.trace import Tracer

__all__ = ["CallbackHandler", "CallbackSpec"]

logger = logging.getLogger(__name__)

CallbackSpec = TrainerCallback | type[TrainerCallback]


class CallbackHandler:
    """Callbacks in firing order, and :attr:`dispatcher`: the lifecycle compiled with them."""

    def __init__(
        self,
        lifecycle: Lifecycle,
        runner: Runner,
        callbacks: Iterable[CallbackSpec],
        tracer: Tracer | None,
        mode: DispatchMode = "generated",
    ):
        self.lifecycle = lifecycle
        self.runner = runner
        self.tracer = tracer
        self.mode: DispatchMode = mode
        self.callbacks: list[TrainerCallback] = []
        for callback in callbacks:
            self._append(callback)
        self.dispatcher = self._compile()

    @property
    def callback_list(self) -> str:
        """The callbacks' class names, one a line (as transformers shows them)."""
        return "\n".join(type(cb).__name__ for cb in self.callbacks)

    def add_callback(self, callback: CallbackSpec) -> None:
        """Append a callback (class or instance); it runs after those already there. One that cannot
        bind (a misspelt transition, say) is refused and the list stays as it was."""
        self._append(callback)
        try:
            self._recompile()
        except Exception:
            self.callbacks.pop()
            raise

    def pop_callback(self, callback: CallbackSpec) -> TrainerCallback | None:
        """Remove and return the first callback that is ``callback`` (or an instance of that class)."""
        for cb in self.callbacks:
            if (isinstance(callback, type) and isinstance(cb, callback)) or cb is callback:
                self.callbacks.remove(cb)
                self._recompile()
                return cb
        return None

    def remove_callback(self, callback: CallbackSpec) -> None:
        """Remove the first callback that is ``callback`` (or an instance of that class)."""
        self.pop_callback(callback)

    def _append(self, callback: CallbackSpec) -> None:
        cb = callback() if isinstance(callback, type) else callback
        if any(type(c) is type(cb) for c in self.callbacks):
            logger.warning("a %s is already among the callbacks; adding another", type(cb).__name__)
        self.callbacks.append(cb)

    def _compile(self, old: Dispatcher | None = None) -> Dispatcher:
        return Dispatcher(
            self.lifecycle,
            self.runner,
            self.callbacks,
            self.tracer,
            mode=self.mode,
            counts=old.counts if old is not None else None,
            standing=old.standing if old is not None else None,
        )

    def _recompile(self) -> None:
        """The lifecycle compiled for the changed list, standing where the old one stood, with its
        counts. A run under way goes on with the callbacks it started with."""
        self.dispatcher = self._compile(self.dispatcher)
