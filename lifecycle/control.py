"""TrainerControl: the five flags that guard the lifecycle's transitions, and when they reset.

A flag is a guard: ``should_evaluate`` is what lets the machine enter ``evaluate``. Callbacks set
flags; the trainer never branches on them. Each flag is cleared by the event that consumes it, before
that event's callbacks run, exactly as in Hugging Face's ``CallbackHandler``:

=================  =====================================================
transition         clears
=================  =====================================================
``epoch_begin``    ``should_epoch_stop``
``step_begin``     ``should_log``, ``should_evaluate``, ``should_save``
``log``            ``should_log``
``evaluate``       ``should_evaluate``
``save``           ``should_save``
=================  =====================================================

``should_training_stop`` is set while a run is prepared, before ``train_begin``: cleared for a new run
(as Hugging Face clears it at ``train_begin``), restored when resuming — a run saved after it was told to
stop stays stopped.
"""

from __future__ import annotations

import attrs

__all__ = ["FLAGS", "RESETS", "TrainerControl"]


@attrs.define
class TrainerControl:
    """Flags a callback sets to steer training; read by the lifecycle's guards."""

    should_training_stop: bool = False
    should_epoch_stop: bool = False
    should_save: bool = False
    should_evaluate: bool = False
    should_log: bool = False

    def update(self, other: TrainerControl) -> None:
        """Take every flag from ``other`` (a callback returned a control of its own)."""
        for flag in FLAGS:
            setattr(self, flag, getattr(other, flag))

    def state(self) -> dict[str, dict[str, bool]]:
        """Hugging Face's ``ExportableState`` shape."""
        return {"args": attrs.asdict(self), "attributes": {}}


FLAGS: tuple[str, ...] = tuple(f.name for f in attrs.fields(TrainerControl))

RESETS: dict[str, tuple[str, ...]] = {
    "epoch_begin": ("should_epoch_stop",),
    "step_begin": ("should_log", "should_evaluate", "should_save"),
    "log": ("should_log",),
    "evaluate": ("should_evaluate",),
    "save": ("should_save",),
}
