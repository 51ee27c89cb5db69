"""A trainer's run into a checkpoint and back: the one call the ``save`` state makes, and the one the
``prepare`` state makes to resume.

Each rank captures its own resume state (random generators, carried loss, flags, data position) and
rank 0 writes the checkpoint for all of them; on resume each rank reads its own. An FSDP2 model and its
optimizer go through :mod:`lifecycle.checkpoint.fsdp`: gathered for rank 0 to write, or written as
each rank's shards (then sealed when the last shard is whole, at once or, with ``async_save``, later).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lifecycle import distributed
from lifecycle.checkpoint import callback_state, contents, folder, ownership, pretrained, tree, world
from lifecycle.checkpoint.lock import OutputDirLock
from lifecycle.data import Stream
from lifecycle.state import TrainerState

if TYPE_CHECKING:
    from lifecycle.args import TrainingArguments
    from lifecycle.run import TrainingRun
    from lifecycle.trainer import Trainer

__all__ = [
    "claim_output_dir",
    "find_checkpoint",
    "load_best_model",
    "load_training",
    "own_runs",
    "save_training",
    "seal_pending",
]

logger = logging.getLogger(__name__)

RankState = tuple[contents.ResumeState, dict[str, Any] | None]
WriteModel = Callable[[Path], None]


def claim_output_dir(
    held: ExitStack,
    args: TrainingArguments,
    topology: distributed.Topology,
    resume_from: str | Path | bool | None,
) -> Path | None:
    """The checkpoint to resume from, once rank 0 has made ``output_dir``, locked it (released when
    ``held`` closes) and found no other run's checkpoints in it.

    Workers that ``torchrun --max-restarts`` restarted resume by themselves from the newest valid
    checkpoint when ``resume_from`` is ``None`` (not said) and there is one."""
    out, main = args.output_dir, topology.is_main
    if main:
        ownership.check_writable(out)
        held.enter_context(OutputDirLock(out))
    if resume_from is None and distributed.restart_attempt() and folder.list_checkpoints(out):
        logger.warning(
            "torchrun restarted the workers (attempt %d): resuming from the newest valid checkpoint in %s "
            "(pass resume_from_checkpoint=False to start over instead)",
            distributed.restart_attempt(),
            out,
        )
        resume_from = True
    checkpoint = find_checkpoint(out, resume_from)
    if main:
        own = {ownership.run_id_of(checkpoint)} if checkpoint is not None else set()  # a new run owns none
        ownership.refuse_other_runs(out, own, args.overwrite_output_dir)
    return checkpoint


def find_checkpoint(output_dir: str | Path, resume_from: str | Path | bool | None) -> Path | None:
    """The checkpoint ``train(resume_from_checkpoint=...)`` names, verified: ``True`` is the newest
    valid one in ``output_dir`` of the run that saved last there, a path is that folder, ``None``/``False``
    none."""
    if resume_from is None or resume_from is False:
        return None
    if resume_from is True:
        run = ownership.latest_run(folder.list_checkpoints(output_dir))
        found = folder.newest_valid_checkpoint(
            output_dir, logger.warning, lambda p: ownership.run_id_of(p) in (run, None)
        )
        if found is None:
            raise folder.CheckpointError(f"no valid checkpoint to resume from in {output_dir}")
        return found
    path = Path(resume_from)
    folder.verify_checkpoint(path)
    return path


def own_runs(run_id: str | None, resume_from: Path | None) -> set[str | None]:
    """The runs whose checkpoints are this run's: itself and the one it resumed (``None`` for a
    checkpoint written before runs had ids)."""
    return {run_id} | ({ownership.run_id_of(resume_from)} if resume_from is not None else set())


def _capture(trainer: Trainer, run: TrainingRun) -> RankState:
    """This rank's random generators, carried loss and flags, and its loader's own state if any."""
    resumable = contents.ResumeState.capture(
        run.loss.fold(),  # one exact number to carry; the uninterrupted run folds here too
        run.grad_norm,
        run.learning_rate,
        trainer.control,
        getattr(run.loader, "sampler", None),
        run.epoch_rng,
        run.batches.passes if isinstance(run.batches, Stream) else 0,
        run.loss.drained,
    )
    return resumable, run.loader.state_dict() if run.resume_method == "state_dict" else None


def _write_files(
    trainer: Trainer, run: TrainingRun, into: Path, ranks: list[RankState], model: WriteModel
) -> None:
    model(into)  # the weights and the optimizer's state
    pretrained.save_pretrained_config(into, trainer.model, trainer.processing_class)
    contents.save_state_dicts(into, contents.parts(None, trainer.lr_scheduler, run.scaler))
    for rank, (resumable, _) in enumerate(ranks):
        contents.write_resume(into, resumable, rank)
    contents.save_loader_states(into, [loader_state for _, loader_state in ranks])
    trainer.state.stateful_callbacks, tensors = callback_state.callback_states(trainer.callbacks)
    callback_state.save_callback_tensors(into, tensors)
    trainer.state.save_to_json(into / folder.STATE_FILE)


def _replicated(trainer: Trainer) -> WriteModel:
    """The weights and optimizer state every rank holds alike (one process, DDP): rank 0's."""

    def write(into: Path) -> None:
        contents.save_weights(into, trainer.model)
        contents.save_state_dicts(into, {contents.OPTIMIZER: trainer.optimizer})

    return write


def save_training(trainer: Trainer, run: TrainingRun) -> None:
    """Write ``checkpoint-<global_step>`` of the run (rank 0 writes, every rank's resume state in it),
    rotate old ones out, and let no rank go on before it is whole."""
    state, args = trainer.state, trainer.args
    state.position.saved_step = state.global_step
    fired = state.position.fired = dict(trainer.dispatcher.counts)
    for leaving in trainer.dispatcher.node.edges[:1]:  # out of the saving state, once it is whole
        fired[leaving.name] += 1
    if state.best_global_step == state.global_step:  # recorded before writing: the file says so too
        state.best_model_checkpoint = f"{folder.PREFIX}{state.global_step}"  # relative: the folder may move
    ranks = distributed.gather_on_main(_capture(trainer, run))
    seal_pending(run)  # the one before, written in the background, is whole first
    options = args.fsdp_options
    if options is not None and options.sharded_checkpoints:
        _save_shards(trainer, run, ranks)
        return
    write_model = _replicated(trainer)
    if options is not None:  # FULL_STATE_DICT: every rank helps gather, rank 0 writes
        from lifecycle.checkpoint import fsdp

        weights, optimizer_state = fsdp.gather_full(trainer.model, trainer.optimizer)

        def write_model(into: Path) -> None:
            fsdp.save_full(into, weights, optimizer_state)

    if trainer.topology.is_main:  # the ranks hold the same weights; one writes them
        written = folder.write_checkpoint(
            args.output_dir,
            state.global_step,
            lambda into: _write_files(trainer, run, into, ranks, write_model),
        )
        _rotate(trainer, run, written)
    distributed.barrier()


def _save_shards(trainer: Trainer, run: TrainingRun, ranks: list[RankState]) -> None:
    """Every rank writes its shards into rank 0's staged folder; sealed once all are whole — now, or
    before the next save or the end when they are written in the background."""
    from lifecycle.checkpoint import fsdp

    step, main = trainer.state.global_step, trainer.topology.is_main
    final = Path(trainer.args.output_dir) / f"{folder.PREFIX}{step}"
    background = run.saving_group if trainer.signals.received is None else None  # stopping: write now
    writing, groups = fsdp.start_shards(
        folder.stage_checkpoint(final) if main else None, trainer.model, trainer.optimizer, background
    )
    if main:
        _write_files(
            trainer, run, writing.folder, ranks,
            lambda into: tree.save_tree(into, contents.OPTIMIZER, {"param_groups": groups}),
        )  # fmt: skip

    def seal() -> None:
        entries = writing.finish()
        if main:
            _rotate(trainer, run, folder.seal_checkpoint(writing.folder, final, step, entries))
        distributed.barrier()

    if background is None:
        seal()
    else:
        run.pending_save = seal


def seal_pending(run: TrainingRun) -> None:
    """Wait for the checkpoint being written in the background, if any, and put it in place."""
    pending, run.pending_save = run.pending_save, None
    if pending is not None:
        pending()


def _rotate(trainer: Trainer, run: TrainingRun, written: Path) -> None:
    """Rank 0, after a save: other runs' checkpoints removed (``overwrite_output_dir``), and this
    run's beyond ``save_total_limit``."""
    state, args = trainer.state, trainer.args
    own = own_runs(state.run_id, run.resume_from)
    if args.overwrite_output_dir and not run.replaced_others:
        removed = ownership.remove_other_runs(args.output_dir, own)
        if removed:
            logger.info("overwrite_output_dir: removed %s", ", ".join(p.name for p in removed))
        run.replaced_others = True
    keep = {written, *([run.resume_from] if run.resume_from else [])}
    if state.best_model_checkpoint:
        keep.add(ownership.inside(args.output_dir, state.best_model_checkpoint))
    folder.rotate_checkpoints(
        args.output_dir, args.save_total_limit, keep, lambda p: ownership.run_id_of(p) in own
    )


def load_training(trainer: Trainer, run: TrainingRun, path: Path) -> TrainerState:
    """Restore weights, optimizer, schedule, scaler, loader, callback states and flags from ``path``;
    ``run.resumed`` takes this rank's resume state. Returns the checkpoint's :class:`TrainerState`."""
    state = contents.read_state(path)
    if state.best_model_checkpoint and Path(state.best_model_checkpoint).is_absolute():  # older releases
        state.best_model_checkpoint = Path(state.best_model_checkpoint).name
    counts = trainer.dispatcher.counts
    counts.update((name, n) for name, n in state.position.fired.items() if name in counts)
    rank = trainer.topology.rank
    resumed = contents.read_resume(path, rank)
    _load_model(trainer, path, with_optimizer=True)
    parts = contents.parts(None, trainer.lr_scheduler, run.scaler)
    if run.resume_method == "state_dict":
        parts[contents.rank_file(contents.DATALOADER, rank)] = run.loader
    contents.load_state_dicts(path, parts)
    if run.resume_method == "state_dict" and not state.position.epoch_open:
        # the restored iterator is the closed epoch's; the next one begins a new epoch, as in the
        # uninterrupted run (random draws made here are undone when the epoch begins)
        iter(run.loader)
    if trainer.args.restore_callback_states_from_checkpoint:
        tensors = callback_state.load_callback_tensors(path)
        callback_state.restore_callback_states(trainer.callbacks, state.stateful_callbacks, tensors)
    resumed.check_sampler(getattr(run.loader, "sampler", None), path)
    world.resume_on_world_size(
        state, resumed, path, trainer.topology.world_size, sampler=run.resume_method == "sampler"
    )
    trainer.control.should_training_stop = resumed.control.get("should_training_stop", False)
    if _trains_longer(trainer, state, run):
        trainer.control.should_training_stop = False
    run.resumed = resumed
    return state


def load_best_model(trainer: Trainer) -> None:
    """Load the best checkpoint's weights once it verifies; a damaged one is reported in a warning
    naming the bad file, and the model keeps the weights it ended with."""
    best = trainer.state.best_model_checkpoint
    if not best:
        return
    path = ownership.inside(trainer.args.output_dir, best)
    try:
        folder.verify_checkpoint(path)
    except folder.CheckpointError as exc:
        logger.warning(
            "load_best_model_at_end: the best checkpoint cannot be loaded (%s); the model keeps the "
            "weights it ended with",
            exc,
        )
        return
    _load_model(trainer, path, with_optimizer=False)


def _load_model(trainer: Trainer, path: Path, *, with_optimizer: bool) -> None:
    """The weights (and the optimizer's state) from ``path``: FSDP2's resharded from shards or from
    full tensors, else copied whole."""
    optimizer = trainer.optimizer if with_optimizer else None
    if trainer.args.fsdp:  # shards resharded for this world size (load_training warns of a change)
        from lifecycle.checkpoint import fsdp

        load = fsdp.load_shards if folder.has_shards(path) else fsdp.load_full
        load(path, trainer.model, optimizer)
        return
    if folder.has_shards(path):
        raise folder.CheckpointError(
            f"{path}: holds an FSDP model's shards ({folder.SHARDS_DIR}/); resume it with "
            "TrainingArguments(fsdp=True, fsdp_config=...)"
        )
    contents.load_weights(path, trainer.model, str(trainer.device))
    if optimizer is not None:
        contents.load_state_dicts(path, {contents.OPTIMIZER: optimizer})


def _trains_longer(trainer: Trainer, saved: TrainerState, run: TrainingRun) -> bool:
    """The checkpoint's run had reached its end and this one is longer: it trains on (a stop that a
    callback asked for before the end, early stopping say, stands)."""
    ended = trainer.control.should_training_stop and saved.global_step >= saved.max_steps
    if ended and run.plan.max_steps > saved.global_step:
        logger.warning(
            "the checkpoint's run ended at step %d; training on to step %d (the schedule is rebuilt "
            "for %d steps and goes on from step %d)",
            saved.global_step,
            run.plan.max_steps,
            run.plan.max_steps,
            saved.global_step,
        )
        return True
    return False
