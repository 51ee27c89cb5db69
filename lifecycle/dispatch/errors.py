"""What a failure in the running lifecycle says: the callback or effect and the transition, or the state.

Each place the running code calls out (a callback, an effect, an entry action, a guard) is a
:class:`Site`. A callback or effect that raises becomes a :class:`CallbackError` naming it, the
transition and the step; an entry action's or a guard's exception keeps its type and gains a note
saying where it was raised (PEP 678).
"""

from __future__ import annotations

from typing import Any

import attrs

__all__ = ["CallbackError", "Site", "failure"]


class CallbackError(RuntimeError):
    """A callback raised; the message names the callback, the transition and the step."""


@attrs.frozen
class Site:
    """One call the running lifecycle makes, as errors name it."""

    #: ``callback``, ``effect``, ``action`` or ``guard``
    kind: str
    #: ``callback Class.method``, ``effect close_epoch``, the action's or the guard's name
    text: str
    #: the transition (``'step_end' (advance -> boundary)``) or, for an action, the state
    where: str


def failure(exc: BaseException, site: Site | None, runner: Any) -> BaseException | None:
    """The error to raise instead of ``exc`` (raised at ``site``), or None to raise ``exc`` itself, with a
    note added when it came from an entry action or a guard."""
    if site is None or not isinstance(exc, Exception):
        return None
    step = runner.state.global_step
    if site.kind == "action":
        _note(
            exc,
            f"in lifecycle state {site.where!r} ({type(runner).__name__}.{site.text}) at global_step {step}",
        )
        return None
    if site.kind == "guard":
        _note(exc, f"in guard {site.text} of transition {site.where} at global_step {step}")
        return None
    if isinstance(exc, CallbackError):
        return None
    return CallbackError(
        f"{site.text} raised {type(exc).__name__} on transition {site.where} at global_step {step}: {exc}"
    )


def _note(exc: BaseException, text: str) -> None:
    if hasattr(exc, "add_note") and text not in getattr(exc, "__notes__", ()):
        exc.add_note(text)
