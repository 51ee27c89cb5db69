"""HeldPoints: what a continued run already holds from past its checkpoint, so it is not logged twice.

A tracker that can neither delete points nor replace one at a step keeps everything a stopped process
logged after its last checkpoint. The resumed training logs those (metric, step) points again, with
the same values: a tracker skips each one it holds, once, and the run holds every point once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from lifecycle.integrations.values import rewrite_names

__all__ = ["HeldPoints"]


class HeldPoints:
    """The points of ``held`` (``(metric, step)``, one per logged point) that came after the checkpoint
    at ``step``: all those at later steps, and at ``step`` those beyond what ``history`` (the
    checkpoint's ``log_history``) logged there; without ``history``, those at later steps only."""

    def __init__(
        self,
        held: Iterable[tuple[str, int]],
        step: int,
        history: Sequence[Mapping[str, Any]] | None = None,
        *,
        rename: bool = True,
    ):
        points = Counter(point for point in held if point[1] >= step)
        before: Counter[tuple[str, int]] = Counter()
        if history is None:
            before = Counter({point: n for point, n in points.items() if point[1] == step})
        for entry in history or ():
            if entry.get("step") == step:
                numbers = {k: v for k, v in entry.items() if k != "step" and isinstance(v, (int, float))}
                before.update((key, step) for key in (rewrite_names(numbers) if rename else numbers))
        self._left = points - before

    def __bool__(self) -> bool:
        return bool(self._left)

    def take(self, metric: str, step: int) -> bool:
        """Whether the run holds this point already (counted off: a second one at the step is new)."""
        if self._left[metric, step] <= 0:
            return False
        self._left[metric, step] -= 1
        self._left += Counter()  # drops what is counted off
        return True
