"""The look every drawing shares: palette, legends, and how counts and times read."""

from __future__ import annotations

__all__ = [
    "ACTION_FILL",
    "CUSTOM",
    "EVENT",
    "FAINT",
    "GOLD",
    "HEAT",
    "HEAT_KEY",
    "INK",
    "JUNCTION_FILL",
    "KEY",
    "PLUMBING",
    "REST_FILL",
    "TIMES",
    "duration",
]

# edges by kind: Hugging Face events, the lifecycle's plumbing (to_*), transitions a user added
EVENT, PLUMBING, CUSTOM = "#2b5797", "#8c8c8c", "#8e44ad"
# states by kind: rest, with an entry action, junction
REST_FILL, ACTION_FILL, JUNCTION_FILL = "#dce8f7", "#f7f7f7", "#fff1c9"
INK, FAINT, GOLD = "#222222", "#6b6b6b", "#b08a2e"
TIMES = "\u00d7"  # the multiplication sign of "x3": taken three times
#: a run's heat map, coolest first
HEAT = ("#fdd49e", "#fdbb84", "#fc8d59", "#ef6548", "#d7301f", "#b30000", "#7f0000")

#: the legend under a drawing's title
KEY = (
    "blue: Hugging Face events · dashed: lifecycle plumbing · purple: added transitions · "
    "[guard] / effect · #n: order in which guards are tried · ⟲ internal transition · ▸ callback"
)
#: the legend of a run's heat map
HEAT_KEY = "a run: edge width = times taken · colour = time in callbacks (log scale) · dotted: never taken"


def duration(ns: int) -> str:
    """``ns`` nanoseconds as seconds, milliseconds or microseconds, three digits: ``1.5 ms``."""
    for unit, scale in (("s", 1e9), ("ms", 1e6)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}"
    return f"{ns / 1e3:.3g} µs"
