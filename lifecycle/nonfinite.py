"""Non-finite losses and gradient norms: counted on the device, looked at where the host reads anyway.

Every micro-batch loss (as :class:`~lifecycle.loss.LossTally` folds them) and every clipped gradient
norm is counted (nan, inf, the first bad one) with tensor ops, never read on its own.
:meth:`NonFiniteWatch.check` reads the counts in one transfer at a log, before a save and at the
finish, and acts on ``TrainingArguments.nonfinite``: ``stop`` raises :class:`NonFiniteError`, ``warn``
logs one warning. ``skip`` looks at each step before the optimizer does (:meth:`NonFiniteWatch.skips`,
one host sync per step).
"""

from __future__ import annotations

import bisect
import logging

import attrs
import torch
import torch.distributed as dist

__all__ = ["Census", "Finding", "NonFiniteError", "NonFiniteWatch"]

logger = logging.getLogger(__name__)

FOLD = 256  # gradient norms kept on the device before they are counted
NONE = torch.iinfo(torch.int64).max  # the index of the first bad value while there is none


class NonFiniteError(RuntimeError):
    """Training met a nan or inf loss or gradient norm under ``nonfinite="stop"``."""


class Census:
    """nan and inf among the values counted since the last :meth:`reset`, and the index of the first
    of them: ``[nan, inf, first]`` on the device."""

    def __init__(self, device: torch.device):
        self.device = device
        self.counts = torch.tensor([0, 0, NONE], dtype=torch.int64, device=device)
        self.seen = 0
        """Values counted since the last reset: the index the next one gets."""

    def count(self, values: torch.Tensor) -> None:
        """Count ``values`` (1-d) with tensor ops only."""
        nan, inf = values.isnan(), values.isinf()
        bad = nan | inf
        first = torch.where(bad.any(), bad.int().argmax() + self.seen, NONE)
        self.counts = torch.cat(
            [
                self.counts[:2] + torch.stack([nan.sum(), inf.sum()]),
                torch.minimum(self.counts[2:], first[None]),
            ]
        )
        self.seen += len(values)

    def reset(self) -> None:
        self.counts = torch.tensor([0, 0, NONE], dtype=torch.int64, device=self.device)
        self.seen = 0


@attrs.define
class Finding:
    """One kind of value that was not always finite since the last check."""

    what: str
    """``loss`` or ``gradient norm``."""
    nan: int
    inf: int
    step: int
    """The step of the first nan or inf."""

    def __str__(self) -> str:
        kinds = " and ".join(f"{n} {kind}" for n, kind in ((self.nan, "nan"), (self.inf, "inf")) if n)
        return f"{self.what}: {kinds}, the first at step {self.step}"


class NonFiniteWatch:
    """Counts non-finite micro-batch losses (:attr:`losses`, filled by the loss tally) and gradient
    norms; :meth:`check` reads both at once and acts on the policy."""

    def __init__(self, device: torch.device, policy: str, distributed: bool = False):
        self.policy = policy
        self.distributed = distributed
        self.losses = Census(device)
        self.norms = Census(device)
        self.pending_norms: list[torch.Tensor] = []
        self.since = 0
        """``global_step`` at the last check (or when the run began)."""
        self.loss_marks: list[int] = []
        """The index of each step's first loss, for the steps since the last check (the loss tally
        appends to this list: :meth:`~lifecycle.loss.LossTally.begin_step`)."""
        self.window: list[torch.Tensor] = []
        """``skip``: the losses of the step under way."""

    def add_norm(self, norm: torch.Tensor) -> None:
        """One step's gradient norm, kept on the device."""
        self.pending_norms.append(norm.detach())
        if len(self.pending_norms) == FOLD:
            self._fold_norms()

    def _fold_norms(self) -> None:
        if self.pending_norms:
            self.norms.count(torch.stack(self.pending_norms).float())
            self.pending_norms = []

    def check(self, step: int, where: str) -> list[Finding]:
        """What was not finite since the last check (the losses folded already), read in one transfer;
        ``stop`` raises on it, ``warn`` logs it. Counting starts anew at ``step``."""
        self._fold_norms()
        counts = torch.cat([self.losses.counts, self.norms.counts])
        if self.distributed:  # every rank decides alike
            nan_inf, first = counts.view(2, 3)[:, :2].contiguous(), counts.view(2, 3)[:, 2].contiguous()
            dist.all_reduce(nan_inf)
            dist.all_reduce(first, op=dist.ReduceOp.MIN)
            counts = torch.cat([nan_inf, first[:, None]], dim=1).flatten()
        nan, inf, first, norm_nan, norm_inf, norm_first = counts.tolist()
        since, self.since = self.since, step
        found = []
        if nan or inf:
            found.append(Finding("loss", nan, inf, since + bisect.bisect_right(self.loss_marks, first)))
        if norm_nan or norm_inf:
            found.append(Finding("gradient norm", norm_nan, norm_inf, since + 1 + norm_first))
        self.losses.reset()
        self.norms.reset()
        self.loss_marks.clear()  # in place: the loss tally appends to it
        if found:
            self._act(found, since, step, where)
        return found

    def _act(self, found: list[Finding], since: int, step: int, where: str) -> None:
        what = "; ".join(map(str, found))
        span = f"after step {since}" if step == since + 1 else f"between step {since} and step {step}"
        if self.policy == "stop":
            raise NonFiniteError(
                f"non-finite values {span} (found {where}): {what}. Training stopped "
                "(nonfinite='stop'); no checkpoint holds the weights after it: the newest checkpoint, "
                "if any, is the last good one"
            )
        if self.policy == "warn":
            logger.warning("non-finite values %s (found %s): %s", span, where, what)

    def skips(self, model: torch.nn.Module, norm: torch.Tensor | None, scaled: bool, step: int) -> bool:
        """``skip``: whether the step under way had a non-finite loss or gradient ``norm`` (computed
        here when the run does not clip; under fp16, ``scaled``, the loss scaler skips overflowing
        steps itself and only the losses are looked at); one host sync."""
        losses, self.window = self.window, []
        loss = torch.stack(losses)
        if scaled:
            norm = torch.zeros((), device=loss.device)
        elif norm is None:
            norms = [
                torch.linalg.vector_norm(p.grad.float()) for p in model.parameters() if p.grad is not None
            ]
            norm = torch.linalg.vector_norm(torch.stack(norms)) if norms else torch.zeros_like(loss)
        flags = torch.stack([~torch.isfinite(loss).all(), ~torch.isfinite(norm)]).int()
        if self.distributed:
            dist.all_reduce(flags, op=dist.ReduceOp.MAX)
        bad_loss, bad_norm = flags.tolist()
        if bad_loss or bad_norm:
            what = "loss" if bad_loss else "gradient norm"
            logger.warning("step %d skipped (nonfinite='skip'): its %s is not finite", step, what)
        return bool(bad_loss or bad_norm)
