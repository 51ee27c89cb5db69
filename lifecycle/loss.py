"""The training loss between logs, kept on the device: summed without a host sync, read once per log."""

from __future__ import annotations

import torch

from lifecycle.nonfinite import Census

__all__ = ["LossTally"]

FOLD = 256  # losses kept on the device before they are summed into the running total


class LossTally:
    """Micro-batch losses since the last log. :meth:`add` never syncs with the host; :meth:`drain`,
    once per log, is the one read.

    With ``nan_inf_filter`` a non-finite loss counts as the mean of the finite ones folded with it, so
    one bad batch does not turn the logged loss into ``nan``; where none of them is finite, the sum is
    ``nan`` (never a made-up number). A ``census`` counts the non-finite ones as they are folded.
    """

    def __init__(
        self,
        device: torch.device,
        nan_inf_filter: bool,
        total: torch.Tensor | None = None,
        census: Census | None = None,
        marks: list[int] | None = None,
    ):
        self.device = device
        self.nan_inf_filter = nan_inf_filter
        self.census = census if census is not None else Census(device)
        self.marks = marks if marks is not None else []
        """The census index of each step's first loss (:meth:`begin_step` appends; whoever reads the
        census clears it)."""
        self.pending: list[torch.Tensor] = []
        self.total = total if total is not None else torch.zeros((), device=device)
        """The summed losses folded so far (a resumed run starts from the checkpoint's)."""
        self.drained = 0.0
        """Everything :meth:`drain` has read: the run's summed loss."""

    def begin_step(self) -> None:
        """An optimizer step begins: the next loss added is its first (one append per step)."""
        self.marks.append(self.census.seen + len(self.pending))

    def add(self, loss: torch.Tensor) -> None:
        self.pending.append(loss.detach())
        if len(self.pending) == FOLD:
            self.fold()

    def fold(self) -> torch.Tensor:
        """Sum the pending losses into :attr:`total`, on the device; return the total."""
        if self.pending:
            pending = torch.stack(self.pending)
            self.census.count(pending)
            if self.nan_inf_filter:
                finite = torch.isfinite(pending)
                mean = torch.where(finite, pending, 0.0).sum() / finite.sum()  # nan if none is finite
                pending = torch.where(finite, pending, mean)
            self.total = self.total + pending.sum()
            self.pending = []
        return self.total

    def drain(self) -> float:
        """The summed loss since the last drain, as a float (the one host sync per log)."""
        value = float(self.fold())
        self.total = torch.zeros((), device=self.device)
        self.drained += value
        return value
