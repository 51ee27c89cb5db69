"""GreedyLR, transformers' ``greedy`` schedule: the learning rate follows the evaluation metric.

After more than ``patience`` evaluations in a row that improve on the best, every group's rate is
divided by ``factor`` (up to ``max_lr``); after more than ``patience`` without improvement it is
multiplied by ``factor`` (down to ``min_lr``), then ``warmup`` or ``cooldown`` evaluations pass
without a change. Held at ``min_lr`` for ``reset_start`` reductions, it starts over from the initial
rates. ``smooth`` compares the mean of the last ``window_size`` values instead of each value.
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["GreedyLR"]

logger = logging.getLogger(__name__)


def _per_group(value: float | list[float] | tuple[float, ...], groups: int, name: str) -> list[float]:
    if isinstance(value, (list, tuple)):
        if len(value) != groups:
            raise ValueError(f"GreedyLR: {name} has {len(value)} values for {groups} parameter groups")
        return [float(v) for v in value]
    return [float(value)] * groups


class GreedyLR:
    """Steps on a metric: ``scheduler.step(metric)`` after each evaluation."""

    def __init__(
        self,
        optimizer: Any,
        mode: str = "min",
        factor: float = 0.95,
        patience: int = 10,
        threshold: float = 1e-6,
        threshold_mode: str = "abs",
        cooldown: int = 0,
        warmup: int = 0,
        min_lr: float | list[float] = 1e-3,
        max_lr: float | list[float] = 1.0,
        eps: float = 1e-8,
        verbose: bool = False,
        smooth: bool = False,
        window_size: int = 50,
        reset_start: int = 500,
    ):
        if not factor < 1.0:
            raise ValueError(f"GreedyLR: factor must be below 1, got {factor}")
        if mode not in ("min", "max"):
            raise ValueError(f"GreedyLR: mode must be 'min' or 'max', got {mode!r}")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(f"GreedyLR: threshold_mode must be 'rel' or 'abs', got {threshold_mode!r}")
        groups = len(optimizer.param_groups)
        self.optimizer = optimizer
        self.mode, self.factor, self.patience = mode, factor, patience
        self.threshold, self.threshold_mode, self.eps = threshold, threshold_mode, eps
        self.cooldown, self.warmup, self.verbose = cooldown, warmup, verbose
        self.smooth, self.window_size = smooth, window_size
        self.reset_after = reset_start
        self.reset_start = reset_start
        self.min_lrs = _per_group(min_lr, groups, "min_lr")
        self.max_lrs = _per_group(max_lr, groups, "max_lr")
        self.initial_lrs = [float(g["lr"]) for g in optimizer.param_groups]
        self.last_epoch = 0
        self._last_lr = list(self.initial_lrs)
        self._clear()

    def _clear(self) -> None:
        self.best = float("inf") if self.mode == "min" else float("-inf")
        self.num_bad_epochs = self.num_good_epochs = 0
        self.cooldown_counter = self.warmup_counter = 0
        self.window: list[float] = []
        self.window_sum = 0.0

    def _smoothed(self, value: float) -> float:
        self.window.append(value)
        self.window_sum += value
        if len(self.window) > self.window_size:
            self.window_sum -= self.window.pop(0)
        return self.window_sum / len(self.window)

    def is_better(self, current: float, best: float) -> bool:
        sign = 1.0 if self.mode == "max" else -1.0
        edge = (
            best * (1.0 + sign * self.threshold)
            if self.threshold_mode == "rel"
            else best + sign * self.threshold
        )
        return current > edge if self.mode == "max" else current < edge

    def step(self, metrics: float, epoch: int | None = None) -> None:
        current = self._smoothed(float(metrics)) if self.smooth else float(metrics)
        self.last_epoch = self.last_epoch + 1 if epoch is None else epoch
        if self.cooldown_counter > 0 or self.warmup_counter > 0:
            if self.cooldown_counter > 0:
                self.cooldown_counter -= 1
            else:
                self.warmup_counter -= 1
            self.num_bad_epochs = self.num_good_epochs = 0
        else:
            if self.is_better(current, self.best):
                self.best, self.num_bad_epochs = current, 0
                self.num_good_epochs += 1
            else:
                self.num_bad_epochs, self.num_good_epochs = self.num_bad_epochs + 1, 0
            if self.num_good_epochs > self.patience:
                self._raise()
                self.warmup_counter, self.num_good_epochs = self.warmup, 0
            elif self.num_bad_epochs > self.patience:
                self._lower()
                self.cooldown_counter, self.num_bad_epochs = self.cooldown, 0
        self._last_lr = [float(g["lr"]) for g in self.optimizer.param_groups]

    def _set(self, group: dict[str, Any], index: int, lr: float) -> None:
        group["lr"] = lr
        if self.verbose:
            logger.info("GreedyLR: step %d: group %d's learning rate set to %.4e", self.last_epoch, index, lr)

    def _lower(self) -> None:
        for i, group in enumerate(self.optimizer.param_groups):
            old = float(group["lr"])
            new = max(old * self.factor, self.min_lrs[i])
            if old - new > self.eps:
                self._set(group, i, new)
        if all(g["lr"] <= low for g, low in zip(self.optimizer.param_groups, self.min_lrs, strict=True)):
            self.reset_after -= 1
            if self.reset_after <= 0:
                for group, lr in zip(self.optimizer.param_groups, self.initial_lrs, strict=True):
                    group["lr"] = lr
                self._clear()
                self.reset_after = self.reset_start

    def _raise(self) -> None:
        for i, group in enumerate(self.optimizer.param_groups):
            old = float(group["lr"])
            new = min(old / self.factor, self.max_lrs[i])
            if new - old > self.eps:
                self._set(group, i, new)
        self.reset_after = self.reset_start

    def get_last_lr(self) -> list[float]:
        return self._last_lr

    def state_dict(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if k != "optimizer"}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        for group, lr in zip(self.optimizer.param_groups, self._last_lr, strict=True):
            group["lr"] = lr
