"""What one call of ``train()``, ``evaluate()`` or ``predict()`` holds while it runs.

:class:`TrainingRun` is every per-run value of a training, built by the ``prepare`` state
(``Trainer.begin_training``) and read by the states after it; :class:`EntryCall` is what the entry
point under way was asked for and what it hands back. Nothing else about a run lives on the trainer.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import attrs
import torch

from lifecycle.checkpoint.contents import ResumeState
from lifecycle.data import ResumeMethod
from lifecycle.forward import Batch, LossFn
from lifecycle.loss import LossTally
from lifecycle.nonfinite import NonFiniteWatch
from lifecycle.outputs import PredictionOutput, TrainOutput
from lifecycle.plan import StepPlan
from lifecycle.rng import RngState

__all__ = ["EntryCall", "TrainingRun"]


@attrs.define(eq=False)
class TrainingRun:
    """The values of one training run, from ``prepare`` to ``end``."""

    loader: Any
    """The training batches (``Trainer.get_train_dataloader``)."""
    plan: StepPlan
    """Steps, epochs and intervals (:func:`lifecycle.plan.plan_steps`)."""
    resume_method: ResumeMethod
    """How the loader continues mid-epoch (:func:`lifecycle.data.resume_method`)."""
    forward: LossFn
    """``batch -> loss``, built once (:func:`lifecycle.forward.make_forward`)."""
    loss: LossTally
    """The training loss since the last log, on the device."""
    watch: NonFiniteWatch
    """Non-finite losses and gradient norms, counted on the device (the loss tally counts into it)."""
    no_sync: Callable[[], AbstractContextManager[None]] | None = None
    """DDP's ``no_sync`` inside an accumulation window (``None`` in one process)."""
    metric_schedule: bool = False
    """The scheduler steps on the evaluation metric (after each evaluation), not after each step."""
    scaler: torch.amp.GradScaler | None = None
    """fp16 loss scaling."""
    resume_from: Path | None = None
    """The checkpoint this run resumed from."""
    replaced_others: bool = False
    """``overwrite_output_dir``: other runs' checkpoints were removed at this run's first save."""
    resumed: ResumeState | None = None
    """Its resume state, until the first epoch opens and takes it."""
    grad_norm: torch.Tensor | None = None
    """The last step's gradient norm (clipped runs), on the device."""
    parameters: list[torch.nn.Parameter] = attrs.field(factory=list)
    """The model's parameters, listed once per run: clipped and zeroed at each step without walking the
    model's modules."""
    clip: Callable[[Any, float], torch.Tensor] = torch.nn.utils.clip_grad_norm_
    """``(parameters, max_norm) -> total norm``: clips the gradients (sharded ones under FSDP)."""
    saving_group: Any = None
    """FSDP ``async_save``: the process group the background writing uses, apart from training's."""
    pending_save: Callable[[], None] | None = None
    """A checkpoint whose shards are written in the background: calling it waits and seals it."""
    learning_rate: float = 0.0
    """The last step's learning rate."""
    batches: Iterator[Batch] = attrs.field(factory=lambda: iter(()))
    """The open epoch's remaining batches."""
    epoch_rng: RngState | None = None
    """The random state the open epoch began with, for a loader that is replayed on resume."""
    window: int = 1
    """Micro-batches in the accumulation window under way."""
    first_step: int = 0
    """``global_step`` when this run began (after a resume: the checkpoint's)."""
    start_time: float = attrs.field(factory=time.time)
    output: TrainOutput | None = None
    """What ``train()`` returns, set by ``finish``."""


@attrs.define(eq=False)
class EntryCall:
    """What the entry point under way (``train``, ``evaluate`` or ``predict``) asked for and returns."""

    resume_from: Path | None = None
    """``train(resume_from_checkpoint=...)``, resolved to a verified checkpoint."""
    dataset: Any = None
    """``evaluate(eval_dataset)`` or ``predict(test_dataset)``; ``None``: the trainer's eval_dataset."""
    prefix: str = "eval"
    """``metric_key_prefix``."""
    ignore_keys: list[str] | None = None
    """``ignore_keys``: output keys that are not predictions (``None``: the model's default)."""
    eval_sets: list[tuple[Any, str]] = attrs.field(factory=list)
    """``(dataset, prefix)`` of each dataset the evaluation under way covers."""
    metrics: dict[str, float] = attrs.field(factory=dict)
    """The metrics of the last evaluation, merged over its datasets: what ``evaluate()`` returns."""
    prediction: PredictionOutput | None = None
    """What ``predict()`` returns."""
