"""How long a tracker call may run before its tracker is detached: as given, else from the environment."""

from __future__ import annotations

import os

import attrs

__all__ = ["FINISH_TIMEOUT_ENV", "TIMEOUT_ENV", "TimeLimits"]

#: seconds a tracker's ``log`` may take (and its configuration, and ``rewind``)
TIMEOUT_ENV = "LIFECYCLE_TRACKER_TIMEOUT"
#: seconds a tracker's ``start`` may take (it imports its library, may connect), a ``save_checkpoint``
#: (it copies or uploads a checkpoint), and its ``finish`` together with the calls still queued before it
FINISH_TIMEOUT_ENV = "LIFECYCLE_TRACKER_FINISH_TIMEOUT"
CALL_DEFAULT = 30.0
FINISH_DEFAULT = 120.0


def _seconds(given: float | None, variable: str, default: float) -> float:
    if given is not None:
        value, source = float(given), "the time limit"
    else:
        text = os.environ.get(variable, "").strip()
        if not text:
            return default
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"${variable} must be a number of seconds, got {text!r}") from None
        source = f"${variable}"
    if not value > 0:
        raise ValueError(f"{source} must be a positive number of seconds, got {value!r}")
    return value


@attrs.frozen
class TimeLimits:
    """Seconds a tracker call may run: ``finish`` for opening and closing a run, ``call`` for the rest."""

    call: float = CALL_DEFAULT
    finish: float = FINISH_DEFAULT

    @classmethod
    def resolve(cls, call: float | None = None, finish: float | None = None) -> TimeLimits:
        """The limits given, else ``$LIFECYCLE_TRACKER_TIMEOUT`` / ``$LIFECYCLE_TRACKER_FINISH_TIMEOUT``,
        else 30 s and 120 s."""
        return cls(
            _seconds(call, TIMEOUT_ENV, CALL_DEFAULT), _seconds(finish, FINISH_TIMEOUT_ENV, FINISH_DEFAULT)
        )

    def of(self, method: str) -> float:
        """The limit of a call to ``method``."""
        return self.finish if method in ("start", "finish", "save_checkpoint") else self.call
