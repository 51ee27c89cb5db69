"""Trackers: one protocol, one bridge callback, a small adapter per tracker."""

from __future__ import annotations

from typing import Any

__all__ = ["find_tracker", "tracker_callbacks"]


def tracker_callbacks(args: Any) -> list[Any]:
    """The callbacks that report this run to the trackers ``args.report_to`` names."""
    return []


def find_tracker(callbacks: list[Any], name: str, *, unwrap: bool = False) -> Any:
    """The tracker called ``name`` among the trainer's callbacks."""
    raise KeyError(f"no tracker named {name!r}")
