"""What a checkpoint holds, file by file, and how each file is written and read back.

``checkpoint-<step>/``:

=========================  ==========================================================================
``model.safetensors``      the weights (safetensors: no code can hide in it)
``optimizer.*``            optimizer state dict  } each as ``.safetensors`` (its tensors) and ``.json``
``scheduler.*``            scheduler state dict  } (the rest), :mod:`lifecycle.checkpoint.tree`;
``scaler.*``               grad scaler, if any   } nothing is unpickled
``dataloader.*``           the training loader's own ``state_dict``, when it has one (torchdata's
                           ``StatefulDataLoader``); written like the optimizer's
``resume.json``            :class:`ResumeState`: random generators, loss since the last log, flags
``*-rank<r>.*``            ``resume.json`` and ``dataloader.*`` of rank ``r`` of a distributed run
``trainer_state.json``     :class:`~lifecycle.TrainerState`, with ``position`` and callback states
``callbacks.safetensors``  tensors held in callbacks' states (:mod:`lifecycle.checkpoint.callback_state`)
``manifest.json``          size and sha256 of every file above
=========================  ==========================================================================

This module imports torch only inside the functions that move tensors, so ``lifecycle inspect``
can read ``resume.json`` without it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import cattrs

from lifecycle.checkpoint import legacy, tree
from lifecycle.checkpoint.folder import STATE_FILE, WEIGHTS_FILE, CheckpointError, first_line
from lifecycle.rng import RngState, capture_rng
from lifecycle.state import TrainerState

__all__ = [
    "DATALOADER",
    "RESUME_FILE",
    "LossCarry",
    "ResumeState",
    "load_state_dicts",
    "load_weights",
    "parts",
    "rank_file",
    "ranks_written",
    "read_resume",
    "read_state",
    "save_loader_states",
    "save_state_dicts",
    "save_weights",
    "write_resume",
]

logger = logging.getLogger(__name__)

RESUME_FILE = "resume.json"
DATALOADER = "dataloader"
OPTIMIZER = "optimizer"
SCHEDULER = "scheduler"
SCALER = "scaler"
RESUME_FORMAT = 1


@attrs.define
class LossCarry:
    """The training loss summed since the last log (one exact float32/float64 value), and the last
    step's gradient norm and learning rate: what the next train log is made of."""

    total: float = 0.0
    dtype: str = "float32"
    drained: float = 0.0
    """Every loss logged so far in the run, summed: what the final ``train_loss`` is the mean of."""
    grad_norm: float | None = None
    learning_rate: float = 0.0

    def restore(self, device: Any) -> tuple[Any, Any, float]:
        """``(loss total tensor on device, grad norm tensor or None, learning rate)``; see ``drained``."""
        import torch

        dtype = getattr(torch, self.dtype, None)
        if not isinstance(dtype, torch.dtype):
            raise CheckpointError(f"{RESUME_FILE}: loss.dtype {self.dtype!r} is not a torch dtype")
        total = torch.tensor(self.total, dtype=dtype, device=device)
        grad_norm = None if self.grad_norm is None else torch.tensor(self.grad_norm)
        return total, grad_norm, self.learning_rate


@attrs.define
class ResumeState:
    """Everything a resumed run needs to continue exactly, beyond weights and optimizer."""

    format: int = RESUME_FORMAT
    rng: RngState = attrs.field(factory=RngState)
    loss: LossCarry = attrs.field(factory=LossCarry)
    control: dict[str, bool] = attrs.field(factory=dict)
    """The :class:`~lifecycle.TrainerControl` flags when the checkpoint was written."""
    sampler: dict[str, Any] = attrs.field(factory=dict)
    """How the training order is drawn (seed, shuffle, dataset size), checked on resume."""
    epoch_rng: RngState | None = None
    """The random generators as the epoch began, for a loader that is replayed to resume mid-epoch."""
    passes: int = 0
    """Passes over a training loader without a length completed before the checkpoint."""

    @classmethod
    def capture(
        cls,
        loss_total: Any,
        grad_norm: Any,
        learning_rate: float,
        control: Any,
        sampler: Any,
        epoch_rng: RngState | None = None,
        passes: int = 0,
        drained: float = 0.0,
    ) -> ResumeState:
        """The random generators now, and the trainer's loss accumulation, flags and sampler."""
        identity = getattr(sampler, "identity", None)
        return cls(
            epoch_rng=epoch_rng,
            passes=passes,
            rng=capture_rng(),
            loss=LossCarry(
                total=float(loss_total),
                dtype=str(loss_total.dtype).removeprefix("torch."),
                grad_norm=None if grad_norm is None else float(grad_norm),
                learning_rate=learning_rate,
                drained=drained,
            ),
            control=attrs.asdict(control),
            sampler=identity() if callable(identity) else {},
        )

    def check_sampler(self, sampler: Any, where: Path) -> None:
        """Warn when the training order would be drawn differently from the checkpoint's run."""
        identity = getattr(sampler, "identity", None)
        now = identity() if callable(identity) else {}
        if self.sampler and now and _order(self.sampler) != _order(now):
            logger.warning(
                "%s: the training order was drawn with %s, now with %s; the resumed run sees other batches",
                where,
                self.sampler,
                now,
            )


def _order(identity: dict[str, Any]) -> dict[str, Any]:
    """What draws the order of every epoch; the ranks it is shared out among are another matter
    (:mod:`lifecycle.checkpoint.world`)."""
    return {k: v for k, v in identity.items() if k != "world_size"}


_converter = cattrs.Converter(forbid_extra_keys=False)


def rank_file(name: str, rank: int = 0) -> str:
    """The file ``name`` of ``rank``: ``resume.json`` is rank 0's, ``resume-rank1.json`` rank 1's."""
    if rank == 0:
        return name
    stem, dot, suffix = name.partition(".")
    return f"{stem}-rank{rank}{dot}{suffix}"


def ranks_written(folder: Path) -> int:
    """How many ranks wrote the checkpoint in ``folder`` (rank 0's resume file and one per other rank)."""
    return 1 + sum(1 for _ in folder.glob(rank_file(RESUME_FILE, 1).replace("-rank1", "-rank*")))


def write_resume(folder: Path, resume: ResumeState, rank: int = 0) -> None:
    text = json.dumps(_converter.unstructure(resume), sort_keys=True) + "\n"
    (folder / rank_file(RESUME_FILE, rank)).write_text(text)


def save_loader_states(folder: Path, states: Sequence[Mapping[str, Any] | None]) -> None:
    """Each rank's training loader ``state_dict()`` (``None``: a loader without one)."""
    for rank, state in enumerate(states):
        if state is not None:
            tree.save_tree(folder, rank_file(DATALOADER, rank), state)


def read_resume(folder: Path, rank: int = 0) -> ResumeState:
    """The :class:`ResumeState` of ``rank``; a checkpoint without ``resume.json`` is an error naming it.

    A rank the checkpoint has no file for (it was written by fewer processes) continues from rank 0's
    state, with a warning: its random draws and carried loss are not those of an uninterrupted run.
    """
    path = folder / rank_file(RESUME_FILE, rank)
    if rank and not path.is_file() and (folder / RESUME_FILE).is_file():
        logger.warning(
            "%s: no resume state for rank %d (written by fewer processes); it continues from rank 0's",
            folder,
            rank,
        )
        path = folder / RESUME_FILE
    if not path.is_file():
        raise CheckpointError(
            f"{path}: missing; every checkpoint has one (without it the random generators and the "
            "loss since the last log would not be restored, and the run would not resume exactly)"
        )
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict):
            raise ValueError(f"expected a JSON object, got {type(data).__name__}")
        if int(data.get("format", RESUME_FORMAT)) > RESUME_FORMAT:
            raise ValueError(f"format {data['format']} is newer than this release (reads {RESUME_FORMAT})")
        return _converter.structure(data, ResumeState)
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    except Exception as exc:
        raise CheckpointError(f"{path}: {'; '.join(cattrs.transform_error(exc, path='$'))}") from None


def parts(optimizer: Any, scheduler: Any, scaler: Any = None) -> dict[str, Any]:
    """The objects saved through ``state_dict()``, by name (``None``: not part of this run)."""
    return {OPTIMIZER: optimizer, SCHEDULER: scheduler, SCALER: scaler}


def save_state_dicts(folder: Path, parts: Mapping[str, Any]) -> None:
    """Each ``name -> obj``'s ``state_dict()`` as ``name.safetensors`` + ``name.json`` (``None`` skipped)."""
    for name, obj in parts.items():
        if obj is not None:
            tree.save_tree(folder, name, obj.state_dict())


def load_state_dicts(folder: Path, parts: Mapping[str, Any]) -> None:
    """Load each saved state dict into its object; a missing, malformed or unfitting file is an error
    naming it, and a pickled one (written by an earlier release) is refused unread."""
    for name, obj in parts.items():
        if obj is None:
            continue
        if not (folder / tree.json_file(name)).is_file():
            legacy.refuse_pickled(folder, name)
            raise CheckpointError(
                f"{folder / tree.json_file(name)}: missing (this run has a {type(obj).__name__} to restore)"
            )
        saved = tree.load_tree(folder, name)
        try:
            obj.load_state_dict(saved)
        except Exception as exc:
            raise CheckpointError(
                f"{folder / tree.json_file(name)}: does not fit this {type(obj).__name__} "
                f"({type(exc).__name__}: {first_line(exc)})"
            ) from None


def load_weights(folder: Path, model: Any, device: str) -> None:
    """Copy ``model.safetensors`` into ``model``; a missing or unexpected tensor is an error naming it."""
    from safetensors.torch import load_model

    try:
        load_model(model, str(folder / WEIGHTS_FILE), device=device)
    except (RuntimeError, OSError) as exc:
        raise CheckpointError(f"{folder / WEIGHTS_FILE}: {exc}") from None


def save_weights(folder: Path, model: Any, weights: Mapping[str, Any] | None = None) -> None:
    """``model.safetensors`` in ``folder``: the model's own tensors, or ``weights`` (a state dict
    gathered for it, as FSDP's full state)."""
    from safetensors.torch import save_file, save_model

    if weights is None:
        save_model(model, str(folder / WEIGHTS_FILE))
    else:
        save_file(dict(weights), str(folder / WEIGHTS_FILE), metadata={"format": "pt"})


def read_state(folder: Path) -> TrainerState:
    """The checkpoint's :class:`TrainerState`, every field a checkpoint must have present."""
    return TrainerState.load_from_json(folder / STATE_FILE, checkpoint=True)
