"""A checkpoint resumed on another number of ranks than wrote it (data parallel: the weights,
optimizer and schedule are whole in every checkpoint, so only the data and the per-rank states move).

``global_step`` goes on. Each epoch's order is the same function of (seed, epoch), now shared out among
the new ranks, so the batches differ from the old run's; inside an epoch the run goes on from the first
example the old ranks had not reached together (from ``batch_index * old_ranks`` per-rank batches'
worth), so the rest of the epoch is the examples left (a few seen twice where the counts do not divide).
Each rank restores its own random generators where the checkpoint has them (``resume-rank<r>.json``); a
rank it lacks starts from rank 0's, and those of ranks beyond the new world are left unread. The loss
since the last log is the old ranks' mean on every new rank, so the first log after the change is still
the mean over ranks that it is in every other log (and so is the run's summed loss behind ``train_loss``).
"""

from __future__ import annotations

import logging
from pathlib import Path

from lifecycle.checkpoint.contents import ResumeState, ranks_written, read_resume
from lifecycle.state import TrainerState

__all__ = ["resume_on_world_size"]

logger = logging.getLogger(__name__)


def resume_on_world_size(
    state: TrainerState, resumed: ResumeState, path: Path, world_size: int, *, sampler: bool
) -> None:
    """Move the epoch's position to ``world_size`` ranks (``sampler``: the trainer's own sampler, which
    can start anywhere), carry the old ranks' mean loss in ``resumed``, and say what the change means,
    when the checkpoint had another number of ranks."""
    written = ranks_written(path)
    if written == world_size:
        return
    carried = [read_resume(path, rank).loss for rank in range(written)]
    resumed.loss.total = sum(c.total for c in carried) / written
    resumed.loss.drained = sum(c.drained for c in carried) / written
    p = state.position
    where = "between epochs"
    if p.epoch_open and sampler:
        done, p.batch_index = p.batch_index, p.batch_index * written // world_size
        p.window_end = p.batch_index
        repeated = done * written - p.batch_index * world_size
        where = f"inside epoch {p.epoch_index}, from the examples the old ranks had not reached" + (
            f" ({repeated} batches' worth seen again)" if repeated else ""
        )
    elif p.epoch_open:
        where = f"inside epoch {p.epoch_index}, where this training loader's own state puts each rank"
    unused = written - world_size
    dropped = (
        ""
        if unused <= 0
        else f"; rank {world_size}'s are not used"
        if unused == 1
        else f"; those of ranks {world_size} to {written - 1} are not used"
    )
    logger.warning(
        "%s: world size %d → %d. global_step goes on from %d; each epoch's order is shared out anew among "
        "%d rank%s, so the batches differ from those of the run that saved it; it resumes %s. The loss "
        "since the last log is the old ranks' mean. Random generators: each rank restores its own, a "
        "rank the checkpoint lacks starts from rank 0's%s.",
        path,
        written,
        world_size,
        state.global_step,
        world_size,
        "" if world_size == 1 else "s",
        where,
        dropped,
    )
