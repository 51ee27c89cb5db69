"""Trainer: the work each lifecycle state performs. The machine decides what comes next.

Every public method of the lifecycle's states is an *entry action* named in
:data:`~lifecycle.TRAINING_LIFECYCLE`; none of them looks at a control flag. ``train()``,
``evaluate()`` and ``predict()`` fire one transition out of ``idle`` and let the compiled lifecycle
run until it rests there again::

    idle --to_prepare--> prepare --train_begin--> train --epoch_begin--> epoch --step_begin--> step
    step --pre_optimizer_step--> optimize --optimizer_step--> advance --step_end--> boundary
    boundary --(log? evaluate? save?)--> ...
    boundary --step_begin | epoch_end | epoch_begin | to_finish--> ... finish --log--> end --train_end--> idle
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, IterableDataset

from lifecycle import checkpoint as ckpt
from lifecycle import distributed, resume
from lifecycle.args import ArgumentError, TrainingArguments
from lifecycle.callbacks import DefaultFlowCallback, PrinterCallback, ProgressCallback, TrainerCallback
from lifecycle.control import TrainerControl
from lifecycle.data import EpochSampler, Stream, length, resume_method
from lifecycle.default import TRAINING_LIFECYCLE
from lifecycle.dispatch import Dispatcher
from lifecycle.graph import LifecycleGraph
from lifecycle.integrations import TrackerCallback, find_tracker, tracker_callbacks
from lifecycle.loss import LossTally
from lifecycle.machine import Lifecycle, LifecycleError
from lifecycle.optim import default_optimizer, default_scheduler
from lifecycle.outputs import EvalPrediction, PredictionOutput, TrainOutput
from lifecycle.rng import RngState, capture_rng, restore_rng
from lifecycle.state import TrainerState
from lifecycle.trace import TRACE_FILE, Tracer

__all__ = ["Trainer"]

logger = logging.getLogger(__name__)

Batch = dict[str, Any]
CallbackSpec = TrainerCallback | type[TrainerCallback]


def set_seed(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)
    try:
        import numpy

        numpy.random.seed(seed % 2**32)
    except ImportError:  # numpy is optional
        pass


class Trainer:
    """Trains ``model`` (``forward(**batch)`` returns a dict with ``loss``) as the lifecycle says."""

    def __init__(
        self,
        model: torch.nn.Module,
        args: TrainingArguments | None = None,
        data_collator: Callable[[list[Any]], Batch] | None = None,
        train_dataset: Dataset[Any] | None = None,
        eval_dataset: Dataset[Any] | None = None,
        compute_metrics: Callable[[EvalPrediction], dict[str, float]] | None = None,
        callbacks: Sequence[CallbackSpec] | None = None,
        optimizers: tuple[torch.optim.Optimizer | None, Any] = (None, None),
        processing_class: Any = None,
        lifecycle: Lifecycle = TRAINING_LIFECYCLE,
    ):
        self.args = args if args is not None else TrainingArguments()
        set_seed(self.args.seed)
        use_cuda = not self.args.use_cpu and torch.cuda.is_available()
        self.topology = distributed.join_process_group(use_cuda)
        self.device = self._pick_device(use_cuda)
        self.model = model.to(self.device)
        #: the model as trained: wrapped in DistributedDataParallel across several processes
        self.model_wrapped: torch.nn.Module = self.model
        self.data_collator = data_collator
        self.train_dataset = train_dataset
        self.eval_dataset = eval_dataset
        self.compute_metrics = compute_metrics
        self.processing_class = processing_class
        self.optimizer, self.lr_scheduler = optimizers
        self._own_scheduler = False  # built by train() for its run, so the next train() builds another
        self.lifecycle = lifecycle
        self.state = self._new_state()
        self.control = TrainerControl()
        self.payload: dict[str, Any] = {}
        self._eval_request: tuple[Dataset[Any] | None, str] = (None, "eval")
        self.callback_kwargs: dict[str, Any] = {}
        self.callbacks: list[TrainerCallback] = []
        display = PrinterCallback if self.args.disable_tqdm else ProgressCallback
        for cb in [DefaultFlowCallback, *tracker_callbacks(self.args), *(callbacks or []), display]:
            self._add(cb)
        self._refresh_kwargs()
        self.tracer = Tracer()  # counts and times every transition and callback; trace.json after train()
        self._dispatcher: Dispatcher | None = None
        self.dispatcher.fire("init_end")

    # -- callbacks -------------------------------------------------------------------------------
    def _add(self, callback: CallbackSpec) -> None:
        cb = callback() if isinstance(callback, type) else callback
        if any(type(c) is type(cb) for c in self.callbacks):
            logger.warning("a %s is already among the callbacks; adding another", type(cb).__name__)
        self.callbacks.append(cb)

    def add_callback(self, callback: CallbackSpec) -> None:
        """Append a callback (class or instance); it runs after those already there."""
        self._add(callback)
        self._recompile()

    def pop_callback(self, callback: CallbackSpec) -> TrainerCallback | None:
        """Remove and return the first callback equal to (or an instance of) ``callback``."""
        for cb in self.callbacks:
            if (isinstance(callback, type) and isinstance(cb, callback)) or cb is callback:
                self.callbacks.remove(cb)
                self._recompile()
                return cb
        return None

    def remove_callback(self, callback: CallbackSpec) -> None:
        """Remove the first callback equal to (or an instance of) ``callback``."""
        self.pop_callback(callback)

    @property
    def dispatcher(self) -> Dispatcher:
        """The lifecycle compiled with the current callbacks (rebuilt after a callback change)."""
        if self._dispatcher is None:
            self._dispatcher = Dispatcher(self.lifecycle, self, self.callbacks, self.tracer)
        return self._dispatcher

    def _recompile(self) -> None:
        if self._dispatcher is None:
            return
        where = self._dispatcher.current
        counts = self._dispatcher.counts
        self._dispatcher = Dispatcher(self.lifecycle, self, self.callbacks, self.tracer)
        self._dispatcher.node = self._dispatcher.nodes[where]
        self._dispatcher.counts.update(counts)

    def _refresh_kwargs(self, **changes: Any) -> None:
        self.callback_kwargs = {
            "model": self.model,
            "processing_class": self.processing_class,
            "optimizer": self.optimizer,
            "lr_scheduler": self.lr_scheduler,
            "train_dataloader": self.callback_kwargs.get("train_dataloader"),
            "eval_dataloader": self.callback_kwargs.get("eval_dataloader"),
            **changes,
        }

    def get_tracker(self, name: str, unwrap: bool = False) -> Any:
        """The tracker called ``name`` (its native object with ``unwrap=True``), as in Accelerate."""
        return find_tracker(self.callbacks, name, unwrap=unwrap)

    def lifecycle_graph(self) -> LifecycleGraph:
        """The lifecycle with this trainer's callbacks on each edge, in firing order (``.render(path)``)."""
        names = self.lifecycle.transition_names
        bound = {n: [h.removeprefix("callback ") for h in self.dispatcher.handlers(n)] for n in names}
        return LifecycleGraph.of(self.lifecycle, bound)

    # -- public entry points ----------------------------------------------------------------------
    def train(self, resume_from_checkpoint: str | Path | bool | None = None) -> TrainOutput:
        """Run the lifecycle from ``idle`` (``prepare``, ``train_begin``, ...) until it is idle again."""
        self._ensure_idle("train")
        if self.train_dataset is None:
            raise ValueError("Trainer.train() needs a train_dataset")
        self._resume_from = self._find_checkpoint(resume_from_checkpoint)
        try:
            self.dispatcher.fire("to_prepare")
        except BaseException as exc:
            self._close_failed_run(exc)
            raise
        self._write_trace()
        return self._train_output

    def evaluate(
        self, eval_dataset: Dataset[Any] | None = None, metric_key_prefix: str = "eval"
    ) -> dict[str, float]:
        """Run the evaluation loop (``prediction_step`` per batch, ``log``, ``evaluate``).

        A dict of datasets is evaluated one after the other, each with its name in its metrics'
        prefix (``eval_<name>_loss``) and its own ``log`` and ``evaluate``; the merged metrics return.
        """
        self._ensure_idle("evaluate")
        self.state.position.evaluations_left = 0  # a new evaluation, whatever a failed one left
        self._eval_request = (eval_dataset, metric_key_prefix)
        self.dispatcher.fire("to_evaluate")
        return self._last_metrics

    def predict(self, test_dataset: Dataset[Any], metric_key_prefix: str = "test") -> PredictionOutput:
        """Run the prediction loop (``prediction_step`` per batch, ``predict``)."""
        self._ensure_idle("predict")
        self._predict_request = (test_dataset, metric_key_prefix)
        self.dispatcher.fire("to_predict")
        return self._prediction

    # -- state entry actions: training ------------------------------------------------------------
    def begin_training(self) -> None:
        args, state = self.args, self.state
        self.train_dataloader = self.get_train_dataloader()
        self._resume_method = resume_method(self.train_dataloader)
        self._epoch_rng: RngState | None = None
        batches = length(self.train_dataloader)
        self._streaming = batches is None
        if batches is None:  # iterable data: one epoch of max_steps steps, over as many passes as it takes
            if args.max_steps <= 0:
                raise ArgumentError(
                    "max_steps: the training data has no length (an iterable dataset), so "
                    "TrainingArguments.max_steps must say how many steps to train (num_train_epochs cannot)"
                )
            batches = args.max_steps * args.gradient_accumulation_steps
        updates_per_epoch = max(math.ceil(batches / args.gradient_accumulation_steps), 1)
        if args.max_steps > 0:
            max_steps = args.max_steps
            epochs = math.ceil(max_steps / updates_per_epoch)
        else:
            max_steps = math.ceil(args.num_train_epochs * updates_per_epoch)
            epochs = math.ceil(args.num_train_epochs)
        if self.optimizer is None:
            self.optimizer = default_optimizer(self.model, args)
        if self.lr_scheduler is None or self._own_scheduler:
            self.lr_scheduler = default_scheduler(self.optimizer, args, max_steps)
            self._own_scheduler = True
        self._resume_state: resume.ResumeState | None = None
        self.control.should_training_stop = False  # a new run; a resumed one restores the flag
        if self._resume_from is not None:
            self._load_checkpoint(self._resume_from)
        else:
            self.state = self._new_state()
        state = self.state
        state.is_world_process_zero = self.topology.is_main
        state.is_local_process_zero = self.topology.local_rank == 0
        state.max_steps = max_steps
        state.num_train_epochs = epochs
        state.train_batch_size = args.per_device_train_batch_size
        state.logging_steps = self._steps(args.logging_steps, max_steps)
        state.eval_steps = self._steps(args.eval_steps or args.logging_steps, max_steps)
        state.save_steps = self._steps(args.save_steps, max_steps)
        state.position.training = True
        state.position.batches_in_epoch = batches
        carry = self._resume_state.loss if self._resume_state is not None else resume.LossCarry()
        carried_loss, self._grad_norm, self._learning_rate = carry.restore(self.device)
        self._loss = LossTally(self.device, args.logging_nan_inf_filter, carried_loss)
        self._first_step = state.global_step
        self._start_time = time.time()
        self._refresh_kwargs(train_dataloader=self.train_dataloader)
        if self.model_wrapped is self.model:
            self.model_wrapped = self._wrap_for_training()
        wrapped = self.model_wrapped
        self._no_sync: Callable[[], AbstractContextManager[None]] | None = (
            wrapped.no_sync if isinstance(wrapped, DistributedDataParallel) else None
        )
        self._forward = self._make_forward()
        self.scaler = torch.amp.GradScaler(self.device.type) if args.fp16 else None
        self.model.train()
        self.model.zero_grad(set_to_none=True)

    def begin_epoch(self) -> None:
        p = self.state.position
        resuming = p.epoch_open  # restored from a checkpoint taken mid-epoch
        saved, self._resume_state = self._resume_state, None
        if saved is not None and not resuming:  # the uninterrupted run opens this epoch after the save
            restore_rng(saved.rng)
        sampler: Any = getattr(self.train_dataloader, "sampler", None)
        if isinstance(sampler, EpochSampler):
            start = p.batch_index * self.args.per_device_train_batch_size if resuming else 0
            sampler.set_epoch(p.epoch_index, start=start)
        elif callable(getattr(sampler, "set_epoch", None)):  # DistributedSampler and its kind
            sampler.set_epoch(p.epoch_index)
        if not resuming:
            p.batch_index = 0
            p.window_end = 0
        p.epoch_open = True
        self._batches = self._epoch_batches(p.batch_index if resuming else 0, saved)
        if saved is not None and resuming:  # the uninterrupted run drew the loader's seed long ago
            restore_rng(saved.rng)
            self.control.should_epoch_stop = saved.control.get("should_epoch_stop", False)

    def _epoch_batches(self, done: int, saved: resume.ResumeState | None) -> Iterator[Batch]:
        """The epoch's batches from batch ``done`` on (``saved``: the checkpoint resumed from)."""
        loader, replay = self.train_dataloader, self._resume_method == "replay"
        if replay and done:  # the order the epoch began with is drawn again, then fast-forwarded
            self._epoch_rng = saved.epoch_rng if saved is not None else None
            if self._epoch_rng is not None:
                restore_rng(self._epoch_rng)
        elif replay:
            self._epoch_rng = capture_rng()
        # a restored loader goes on in the pass it was in; a replayed one starts from the first
        passes = saved.passes if saved is not None and done and not replay else 0
        batches = Stream(loader, passes) if self._streaming else iter(loader)  # draws a loader seed
        if replay and done:
            logger.warning(
                "resuming inside an epoch: loading and dropping the %d batches already trained on, as "
                "this training loader has no state_dict (a DataLoader over lifecycle.EpochSampler, the "
                "default, or torchdata's StatefulDataLoader skips them without loading)%s",
                done,
                ""
                if self._epoch_rng is not None
                else "; the checkpoint lacks the epoch's random state: the order may differ",
            )
            for _ in range(done):
                next(batches)
        return batches

    def forward_backward(self) -> None:
        p = self.state.position
        if p.batch_index >= p.window_end:  # the first micro-batch of a window
            p.window_end = min(p.batch_index + self.args.gradient_accumulation_steps, p.batches_in_epoch)
            self._window = p.window_end - p.batch_index
        batch = next(self._batches)
        if self._no_sync is not None and p.batch_index + 1 < p.window_end:
            with self._no_sync():  # DDP all-reduces a window's gradient once, at its last micro-batch
                self._learn_from(batch)
        else:
            self._learn_from(batch)
        p.batch_index += 1
        if p.batch_index == p.window_end and self.args.max_grad_norm > 0:
            if self.scaler is not None:
                assert self.optimizer is not None
                self.scaler.unscale_(self.optimizer)
            self._grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.args.max_grad_norm)

    def _learn_from(self, batch: Batch) -> None:
        """Forward and backward one micro-batch; its loss joins the on-device total."""
        loss = self._forward(batch)
        if self._window > 1:  # the window's gradient is the mean over its micro-batches
            loss = loss / self._window
        (loss if self.scaler is None else self.scaler.scale(loss)).backward()
        self._loss.add(loss)

    def optimizer_update(self) -> None:
        assert self.optimizer is not None
        if self.scaler is None:
            self.optimizer.step()
        else:  # fp16: skip the step when gradients overflowed, and adapt the scale
            self.scaler.step(self.optimizer)
            self.scaler.update()

    def advance_schedule(self) -> None:
        state, p = self.state, self.state.position
        self._learning_rate = self.lr_scheduler.get_last_lr()[0]
        self.lr_scheduler.step()
        self.model.zero_grad(set_to_none=True)
        state.global_step += 1
        state.epoch = p.epoch_index + p.batch_index / p.batches_in_epoch

    def close_epoch(self) -> None:
        p = self.state.position
        p.epoch_open = False
        p.epoch_index += 1
        p.batch_index = 0
        p.window_end = 0

    def collect_train_logs(self) -> None:
        state = self.state
        total = self._loss.drain()
        if self.topology.distributed:
            total = distributed.mean_over_ranks(total, self.device)
        logs: dict[str, float] = {"loss": total / (state.global_step - state.position.logged_step)}
        if self._grad_norm is not None:
            logs["grad_norm"] = float(self._grad_norm)
        logs["learning_rate"] = self._learning_rate
        state.position.logged_step = state.global_step
        self._record_log(logs)

    def summarize_training(self) -> None:
        state = self.state
        self._loss.drain()
        steps = state.global_step - self._first_step
        runtime = time.time() - self._start_time
        samples = steps * self.args.per_device_train_batch_size * self.args.gradient_accumulation_steps
        metrics = {
            "train_runtime": round(runtime, 4),
            "train_samples_per_second": round(samples / runtime, 3) if runtime else 0.0,
            "train_steps_per_second": round(steps / runtime, 3) if runtime else 0.0,
            "total_flos": state.total_flos,
            "train_loss": self._loss.drained / max(steps, 0.001),
        }
        self._train_output = TrainOutput(state.global_step, metrics["train_loss"], metrics)
        self._record_log(dict(metrics))

    def end_training(self) -> None:
        state = self.state
        if self.args.load_best_model_at_end and state.best_model_checkpoint:
            self._load_weights(Path(state.best_model_checkpoint))
        state.position.training = False

    def agree_on_stop(self) -> None:
        """At every boundary, all ranks stop if one asks to (a no-op in one process)."""
        if self.topology.distributed:
            distributed.agree_on_stop(self.control, self.device)

    # -- state entry actions: evaluation, saving, prediction -------------------------------------
    def run_evaluation(self) -> None:
        p = self.state.position
        if p.evaluations_left == 0:  # a new evaluation: one pass per dataset
            self._eval_queue = self._evaluation_sets()
            p.evaluations_left = len(self._eval_queue)
            self._last_metrics = {}
        dataset, prefix = self._eval_queue[-p.evaluations_left]
        p.evaluations_left -= 1
        output = self._prediction_loop(self.get_eval_dataloader(dataset), prefix)
        p.evaluated_step = self.state.global_step
        self._last_metrics.update(output.metrics)
        self._record_log(dict(output.metrics))
        self.dispatcher.emit("log")
        self.payload = {"metrics": output.metrics}

    def _evaluation_sets(self) -> list[tuple[Any, str]]:
        """``(dataset, metric prefix)`` for each dataset the requested evaluation covers."""
        dataset, prefix = self._eval_request
        self._eval_request = (None, "eval")
        dataset = dataset if dataset is not None else self.eval_dataset
        if dataset is None:
            raise ValueError(
                "evaluation needs an eval_dataset (Trainer(eval_dataset=...) or evaluate(dataset))"
            )
        if not isinstance(dataset, dict):
            return [(dataset, prefix)]
        if not dataset:
            raise ValueError("eval_dataset is an empty dict: name at least one dataset to evaluate on")
        return [(data, f"{prefix}_{name}") for name, data in dataset.items()]

    def judge_evaluation(self) -> None:
        """After ``evaluate`` in training: track the best metric; strategy ``best`` saves a new best."""
        args, state = self.args, self.state
        name = args.metric_for_best_model
        if name is None:
            return
        key = name if name.startswith("eval_") else f"eval_{name}"
        if key not in self._last_metrics:
            raise KeyError(
                f"metric_for_best_model={name!r}: {key!r} is not among the evaluation metrics "
                f"{sorted(self._last_metrics)}"
            )
        value = self._last_metrics[key]
        best = state.best_metric
        new_best = best is None or (value > best if args.greater_is_better else value < best)
        if new_best:
            state.best_metric = value
            if args.save_strategy != "no":
                state.best_global_step = state.global_step
        if args.save_strategy == "best":
            self.control.should_save = new_best

    def save_checkpoint(self) -> None:
        state, args = self.state, self.args
        state.position.saved_step = state.global_step
        if state.best_global_step == state.global_step:  # recorded before writing: the file says so too
            state.best_model_checkpoint = str(Path(args.output_dir) / f"{ckpt.PREFIX}{state.global_step}")
        ranks = distributed.gather_on_main(self._capture_resume())  # each rank's own, on rank 0
        if self.topology.is_main:  # the ranks hold the same weights; one writes them

            def write_files(folder: Path) -> None:
                self._write_checkpoint_files(folder, ranks)

            folder = ckpt.write_checkpoint(args.output_dir, state.global_step, write_files)
            keep = {folder, *(Path(p) for p in (state.best_model_checkpoint, self._resume_from) if p)}
            ckpt.rotate_checkpoints(args.output_dir, args.save_total_limit, keep)
        distributed.barrier()  # no rank goes on (or reads it) before the checkpoint is whole

    def run_prediction(self) -> None:
        dataset, prefix = self._predict_request
        self._prediction = self._prediction_loop(self.get_test_dataloader(dataset), prefix)
        self.payload = {"metrics": self._prediction.metrics}

    def compute_loss(
        self,
        model: torch.nn.Module,
        inputs: Batch,
        return_outputs: bool = False,
        num_items_in_batch: int | None = None,
    ) -> Any:
        """The loss of one batch: ``model(**inputs)["loss"]``. Override it to compute another, as in
        transformers; it serves training and, for batches with ``labels``, evaluation
        (``return_outputs=True`` then, and ``(loss, outputs)`` is expected)."""
        outputs = model(**inputs)
        loss = _loss_of(outputs)
        return (loss, outputs) if return_outputs else loss

    def get_train_dataloader(self) -> Any:
        """The training batches; override it to train from a loader of your own.

        The default, a ``DataLoader`` over an :class:`~lifecycle.EpochSampler`, resumes mid-epoch
        without loading a skipped batch. Another loader with ``state_dict``/``load_state_dict``
        (torchdata's ``StatefulDataLoader``) is saved in each checkpoint and restored; any other is
        replayed: its epoch drawn again from the random state the epoch began with, and the batches
        already trained on loaded and dropped. Each way, the resumed run sees the batches the
        uninterrupted run saw. A loader without a ``len()`` (iterable data) is read pass after pass
        for ``max_steps`` steps.
        """
        return self._dataloader(self.train_dataset, self.args.per_device_train_batch_size, train=True)

    def get_eval_dataloader(self, eval_dataset: Any = None) -> Any:
        """The evaluation batches of ``eval_dataset`` (default: the trainer's); override to change."""
        dataset = eval_dataset if eval_dataset is not None else self.eval_dataset
        return self._dataloader(dataset, self.args.per_device_eval_batch_size, train=False)

    def get_test_dataloader(self, test_dataset: Any) -> Any:
        """The prediction batches of ``test_dataset``; override to change."""
        return self._dataloader(test_dataset, self.args.per_device_eval_batch_size, train=False)

    # -- helpers ----------------------------------------------------------------------------------
    def _ensure_idle(self, entry_point: str) -> None:
        """``train()``, ``evaluate()`` and ``predict()`` start from rest, never inside a running one."""
        node = self.dispatcher.node
        if not node.rest:
            raise LifecycleError(
                f"Trainer.{entry_point}() cannot start while the trainer is in lifecycle state "
                f"{node.name!r} (called from a callback?); a callback asks for an evaluation with "
                "control.should_evaluate = True and for a checkpoint with control.should_save = True"
            )

    def _write_trace(self, failure: str | None = None) -> None:
        if self.state.is_world_process_zero:
            trace = Path(self.args.output_dir) / TRACE_FILE
            self.tracer.write(trace, self.dispatcher.counts, self.lifecycle_graph(), failure)

    def _close_failed_run(self, exc: BaseException) -> None:
        """A run that raised still finishes its trackers (so their files are whole) and writes its
        trace, saying where it failed; neither may hide the error itself."""
        for callback in self.callbacks:
            if isinstance(callback, TrackerCallback):
                callback.finish(self.state)
        where = f"in state {self.state.position.lifecycle_state!r} at global_step {self.state.global_step}"
        try:
            self._write_trace(f"{type(exc).__name__} {where}: {exc}")
        except Exception as trace_error:
            logger.warning("the trace of the failed run was not written: %s", trace_error)

    def _pick_device(self, use_cuda: bool) -> torch.device:
        if use_cuda:
            device = torch.device("cuda", self.topology.local_rank)
            torch.cuda.set_device(device)
            return device
        if self.args.fp16:
            raise ValueError("TrainingArguments.fp16 needs a CUDA device; use bf16 on the CPU")
        return torch.device("cpu")

    @staticmethod
    def _steps(value: float, max_steps: int) -> int:
        """``*_steps`` below 1 are a fraction of ``max_steps``."""
        return math.ceil(max_steps * value) if value < 1 else int(value)

    def _new_state(self) -> TrainerState:
        top = self.topology
        return TrainerState(
            epoch=0.0, is_world_process_zero=top.is_main, is_local_process_zero=top.local_rank == 0
        )

    def _dataloader(self, dataset: Any, batch_size: int, *, train: bool) -> DataLoader[Any]:
        """Training data is shared out among the ranks; every rank evaluates on all of its data.

        Iterable data is read as it comes (with several ranks, it shares itself out, as PyTorch's
        ``IterableDataset`` docs describe)."""
        if isinstance(dataset, IterableDataset):
            return DataLoader(
                dataset,
                batch_size=batch_size,
                collate_fn=self.data_collator,
                num_workers=self.args.dataloader_num_workers,
            )
        seed = self.args.data_seed or self.args.seed
        ranks = {"rank": self.topology.rank, "world_size": self.topology.world_size} if train else {}
        sampler = EpochSampler(dataset, seed=seed, shuffle=train, **ranks)
        return DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            collate_fn=self.data_collator,
            num_workers=self.args.dataloader_num_workers,
            drop_last=self.args.dataloader_drop_last and train,
        )

    def _to_device(self, batch: Batch) -> Batch:
        if self.device.type == "cpu":
            return batch
        return {
            k: v.to(self.device, non_blocking=True) if isinstance(v, torch.Tensor) else v
            for k, v in batch.items()
        }

    def _wrap_for_training(self) -> torch.nn.Module:
        """DistributedDataParallel across the ranks, or the model itself in one process."""
        if not self.topology.distributed:
            return self.model
        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(self.model, device_ids=ids)

    def _computes_own_loss(self) -> bool:
        return type(self).compute_loss is not Trainer.compute_loss

    def _make_forward(self) -> Callable[[Batch], torch.Tensor]:
        """``batch -> loss`` for this run, built once: device moves and autocast only where needed."""
        model = self.model_wrapped
        to_device = None if self.device.type == "cpu" else self._to_device

        if self._computes_own_loss():

            def plain(batch: Batch) -> torch.Tensor:
                loss = self.compute_loss(model, batch if to_device is None else to_device(batch))
                if not isinstance(loss, torch.Tensor):
                    raise TypeError(
                        f"{type(self).__name__}.compute_loss returned {type(loss).__name__}: "
                        "return the loss as a tensor"
                    )
                return loss

        else:

            def plain(batch: Batch) -> torch.Tensor:
                outputs = model(**(batch if to_device is None else to_device(batch)))
                loss = outputs.get("loss") if type(outputs) is dict else None
                return loss if loss is not None else _loss_of(outputs)

        if not (self.args.bf16 or self.args.fp16):
            return plain

        def autocast(batch: Batch) -> torch.Tensor:
            with self._autocast():
                return plain(batch)

        return autocast

    def _autocast(self) -> AbstractContextManager[Any]:
        """Mixed precision as the arguments ask (bf16 or fp16 autocast), else nothing."""
        dtype = torch.bfloat16 if self.args.bf16 else torch.float16 if self.args.fp16 else None
        return nullcontext() if dtype is None else torch.autocast(self.device.type, dtype=dtype)

    def _record_log(self, logs: dict[str, Any]) -> None:
        if self.state.epoch is not None:
            logs["epoch"] = self.state.epoch
        self.state.log_history.append({**logs, "step": self.state.global_step})
        self.payload = {"logs": logs}

    @torch.no_grad()
    def _prediction_loop(self, loader: Any, prefix: str) -> PredictionOutput:
        self._refresh_kwargs(eval_dataloader=loader)
        was_training = self.model.training
        self.model.eval()
        start = time.time()
        losses: list[torch.Tensor] = []
        predictions: list[torch.Tensor] = []
        labels: list[torch.Tensor] = []
        want_outputs = self.compute_metrics is not None or prefix == "test"
        samples = batches = 0
        custom_loss = self._computes_own_loss()
        for batch in loader:
            batch = self._to_device(batch)
            with self._autocast():
                if custom_loss and "labels" in batch:
                    loss, outputs = self.compute_loss(self.model, batch, return_outputs=True)
                else:
                    outputs = self.model(**batch)
                    loss = _maybe_loss(outputs)
            size = _batch_size(batch)
            samples, batches = samples + size, batches + 1
            if loss is not None:
                losses.append(loss.detach().float() * size)
            logits = _logits_of(outputs) if want_outputs else None
            if logits is not None:
                predictions.append(logits)
                if "labels" in batch:
                    labels.append(batch["labels"].detach().cpu())
            self.dispatcher.emit("prediction_step")
        self.model.train(was_training)
        runtime = time.time() - start
        metrics: dict[str, float] = {}
        if losses:
            metrics[f"{prefix}_loss"] = float(torch.stack(losses).sum()) / samples
        preds = torch.cat(predictions).numpy() if predictions else None
        label_ids = torch.cat(labels).numpy() if labels else None
        if self.compute_metrics is not None and preds is not None:
            for key, value in self.compute_metrics(EvalPrediction(preds, label_ids)).items():
                metrics[key if key.startswith(f"{prefix}_") else f"{prefix}_{key}"] = value
        metrics[f"{prefix}_runtime"] = round(runtime, 4)
        metrics[f"{prefix}_samples_per_second"] = round(samples / runtime, 3) if runtime else 0.0
        metrics[f"{prefix}_steps_per_second"] = round(batches / runtime, 3) if runtime else 0.0
        return PredictionOutput(preds, label_ids, metrics)

    # -- checkpoints ------------------------------------------------------------------------------
    def _capture_resume(self) -> tuple[resume.ResumeState, dict[str, Any] | None]:
        """This rank's random generators, carried loss and flags, and its loader's own state if any."""
        loader = self.train_dataloader
        carried = resume.ResumeState.capture(
            self._loss.fold(),  # one exact number to carry; the uninterrupted run folds here too
            self._grad_norm,
            self._learning_rate,
            self.control,
            getattr(loader, "sampler", None),
            self._epoch_rng,
            self._batches.passes if isinstance(self._batches, Stream) else 0,
        )
        return carried, loader.state_dict() if self._resume_method == "state_dict" else None

    def _write_checkpoint_files(
        self, folder: Path, ranks: Sequence[tuple[resume.ResumeState, dict[str, Any] | None]]
    ) -> None:
        resume.save_weights(folder, self.model)
        parts = resume.parts(self.optimizer, self.lr_scheduler, getattr(self, "scaler", None))
        resume.save_state_dicts(folder, parts)
        for rank, (carried, _) in enumerate(ranks):
            resume.write_resume(folder, carried, rank)
        resume.save_loader_states(folder, [loader_state for _, loader_state in ranks])
        self.state.stateful_callbacks = resume.callback_states(self.callbacks)
        self.state.save_to_json(folder / ckpt.STATE_FILE)

    def _find_checkpoint(self, resume_from: str | Path | bool | None) -> Path | None:
        if resume_from is None or resume_from is False:
            return None
        if resume_from is True:
            found = ckpt.newest_valid_checkpoint(self.args.output_dir, logger.warning)
            if found is None:
                raise ckpt.CheckpointError(f"no valid checkpoint to resume from in {self.args.output_dir}")
            return found
        folder = Path(resume_from)
        ckpt.verify_checkpoint(folder)
        return folder

    def _load_weights(self, folder: Path) -> None:
        resume.load_weights(folder, self.model, str(self.device))

    def _load_checkpoint(self, folder: Path) -> None:
        state = resume.read_state(folder)
        saved = resume.read_resume(folder, self.topology.rank)
        self._load_weights(folder)
        parts = resume.parts(self.optimizer, self.lr_scheduler, getattr(self, "scaler", None))
        if self._resume_method == "state_dict":
            parts[resume.rank_file(resume.DATALOADER_FILE, self.topology.rank)] = self.train_dataloader
        resume.load_state_dicts(folder, parts)
        if self._resume_method == "state_dict" and not state.position.epoch_open:
            # the restored iterator is the closed epoch's; the next one begins a new epoch, as in the
            # uninterrupted run (random draws made here are undone when the epoch begins)
            iter(self.train_dataloader)
        if self.args.restore_callback_states_from_checkpoint:
            resume.restore_callback_states(self.callbacks, state.stateful_callbacks)
        if saved is not None:
            saved.check_sampler(getattr(self.train_dataloader, "sampler", None), folder)
            self.control.should_training_stop = saved.control.get("should_training_stop", False)
        self.state = state
        self._resume_state = saved


def _loss_of(outputs: Any) -> torch.Tensor:
    loss = _maybe_loss(outputs)
    if loss is None:
        raise ValueError(
            "the model's forward(**batch) must return a dict with a 'loss' (give the batch 'labels')"
        )
    return loss


def _maybe_loss(outputs: Any) -> torch.Tensor | None:
    if isinstance(outputs, dict):
        return outputs.get("loss")
    return getattr(outputs, "loss", None)


def _logits_of(outputs: Any) -> torch.Tensor | None:
    logits = outputs.get("logits") if isinstance(outputs, dict) else getattr(outputs, "logits", None)
    return None if logits is None else logits.detach().float().cpu()


def _batch_size(batch: Batch) -> int:
    for value in batch.values():
        if isinstance(value, torch.Tensor) and value.ndim > 0:
            return int(value.shape[0])
    return 1
