"""Trainer: the entry points, the work each lifecycle state performs, and transformers' override hooks.

``train()``, ``evaluate()`` and ``predict()`` fire one transition out of ``idle`` and let the compiled
lifecycle run until it rests there again. Each state's *entry action* is a method below whose
docstring starts with the state it serves; none of them looks at a control flag: the machine decides
what comes next. Who owns what:

=============================  ==========================================================================
the order of events            :data:`~lifecycle.TRAINING_LIFECYCLE` (the table below), compiled and run by
                               :mod:`lifecycle.dispatch`; ``trainer.dispatcher.counts`` counts each event
the flags the guards read      ``trainer.control`` (:mod:`lifecycle.control`), raised by callbacks
progress and position          ``trainer.state`` (:mod:`lifecycle.state`), saved in every checkpoint
a training run's values        ``trainer.run`` (:class:`lifecycle.run.TrainingRun`), built by ``prepare``
what an entry point returns    ``trainer.call`` (:class:`lifecycle.run.EntryCall`)
steps, epochs, intervals       :func:`lifecycle.plan.plan_steps`
batches, resume mid-epoch      :mod:`lifecycle.data`
the model on a batch           :mod:`lifecycle.forward`
evaluation and prediction      :mod:`lifecycle.evaluation`; predictions gathered: :mod:`lifecycle.gather`
checkpoints                    :mod:`lifecycle.checkpoint` (``training``: save and load a run)
the output_dir, one run in it  :mod:`lifecycle.checkpoint.ownership`, :mod:`lifecycle.checkpoint.lock`
random generators, the seed    :mod:`lifecycle.rng`
several processes, devices     :mod:`lifecycle.distributed`
optimizer and schedule         :mod:`lifecycle.optim` (the names: ``optimizers``, ``schedules``)
checkpointing, torch.compile   :mod:`lifecycle.prepare`
label smoothing                :mod:`lifecycle.smoothing`
nan and inf losses, gradients  :mod:`lifecycle.nonfinite` (``TrainingArguments.nonfinite``)
sharding the model (FSDP2)     :mod:`lifecycle.fsdp` (``TrainingArguments.fsdp``, ``fsdp_config``)
=============================  ==========================================================================

The lifecycle, state by state (entry action; then the exits in the order their guards are tried)::

    state     entry action        exits, tried in this order
    init      -                   init_end -> idle
    idle      (rest)              to_prepare -> prepare
                                  to_evaluate -> evaluate
                                  to_predict -> predict
    prepare   begin_training      train_begin -> train
    train     -                   to_evaluate [eval_on_start] -> evaluate
                                  epoch_begin [epoch_due] -> epoch
                                  to_finish -> finish
    epoch     begin_epoch         step_begin [next_step] -> step
                                  epoch_end / close_epoch -> boundary
    step      forward_backward    substep_end [window_open] -> step
                                  pre_optimizer_step -> optimize
    optimize  optimizer_update    optimizer_step -> advance
    advance   advance_schedule    step_end -> boundary
    boundary  agree_on_stop       to_log [log_due] -> log
                                  to_evaluate [evaluation_due] -> evaluate
                                  to_save [save_due] -> save
                                  step_begin [next_step] -> step
                                  epoch_end [epoch_open] / close_epoch -> boundary
                                  epoch_begin [next_epoch] -> epoch
                                  to_finish -> finish
    log       collect_train_logs  log -> boundary
    evaluate  run_evaluation      prediction_step (internal)
                                  log (internal)
                                  evaluate [more_to_evaluate] -> evaluate
                                  evaluate [training] -> judge
                                  evaluate -> idle
    judge     judge_evaluation    to_boundary -> boundary
    save      save_checkpoint     save -> boundary
    finish    summarize_training  log -> end
    end       end_training        train_end -> idle
    predict   run_prediction      prediction_step (internal)
                                  predict -> idle
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Dataset

from lifecycle import distributed
from lifecycle.args import ArgumentError, TrainingArguments
from lifecycle.callbacks import DefaultFlowCallback, PrinterCallback, ProgressCallback, TrainerCallback
from lifecycle.callbacks.handler import CallbackHandler, CallbackSpec
from lifecycle.checkpoint.contents import LossCarry
from lifecycle.checkpoint.ownership import check_writable, new_run_id
from lifecycle.checkpoint.pretrained import save_model_folder
from lifecycle.checkpoint.training import (
    claim_output_dir,
    load_best_model,
    load_training,
    save_training,
    seal_pending,
)
from lifecycle.control import TrainerControl
from lifecycle.data import EpochSampler, epoch_batches, length, loader_for, resume_method
from lifecycle.default import TRAINING_LIFECYCLE
from lifecycle.dispatch import Dispatcher, DispatchMode
from lifecycle.evaluation import EvalSetup, default_label_names, evaluation_sets, prediction_loop
from lifecycle.forward import Batch, first_checked, loss_of, make_forward
from lifecycle.graph import LifecycleGraph
from lifecycle.integrations import TrackerCallback, find_tracker, tracker_callbacks
from lifecycle.loss import LossTally
from lifecycle.machine import Lifecycle, LifecycleError
from lifecycle.nonfinite import NonFiniteWatch
from lifecycle.optim import create_optimizer, create_scheduler, steps_on_metric
from lifecycle.outputs import EvalPrediction, PredictionOutput, TrainOutput
from lifecycle.plan import plan_steps
from lifecycle.preemption import SignalWatch
from lifecycle.preflight import check_training
from lifecycle.prepare import check_fsdp, prepare_model
from lifecycle.rng import restore_rng, set_seed
from lifecycle.run import EntryCall, TrainingRun
from lifecycle.smoothing import label_smoother
from lifecycle.state import TrainerState
from lifecycle.trace import TRACE_FILE, Tracer

__all__ = ["Trainer"]

logger = logging.getLogger(__name__)
_OUTSIDE = "a training state ran outside train()"


class Trainer:
    """Trains ``model`` (``forward(**batch)`` returns a dict, a ``ModelOutput`` or a tuple with the loss
    first) as the lifecycle says.

    Beyond transformers' arguments: ``lifecycle`` (the declaration to run) and ``dispatch``: how it
    runs, ``"generated"`` (Python source written for it and the callbacks; ``trainer.dispatcher.source``)
    or ``"table"``, the slower reference (:mod:`lifecycle.dispatch`)."""

    def __init__(
        self,
        model: torch.nn.Module,
        args: TrainingArguments | None = None,
        data_collator: Callable[[list[Any]], Batch] | None = None,
        train_dataset: Dataset[Any] | None = None,
        eval_dataset: Dataset[Any] | None = None,
        processing_class: Any = None,
        compute_metrics: Callable[[EvalPrediction], dict[str, float]] | None = None,
        callbacks: Sequence[CallbackSpec] | None = None,
        optimizers: tuple[torch.optim.Optimizer | None, Any] = (None, None),
        preprocess_logits_for_metrics: Callable[[Any, Any], Any] | None = None,
        lifecycle: Lifecycle = TRAINING_LIFECYCLE,
        dispatch: DispatchMode = "generated",
    ):
        self.args = args if args is not None else TrainingArguments()
        set_seed(self.args.seed)
        use_cuda = not self.args.use_cpu and torch.cuda.is_available()
        if self.args.fsdp:  # lifecycle.fsdp is imported only for runs that use it
            check_fsdp(optimizers[0])
            from lifecycle.fsdp import join_one_rank_group

            join_one_rank_group(use_cuda)  # FSDP2 needs a group, even of one process
        self.topology = distributed.join_process_group(use_cuda)
        self.device = distributed.pick_device(self.topology, use_cuda, self.args.fp16)
        self.model = model.to(self.device)
        if self.topology.is_main:  # as in transformers, the folder exists once the trainer does
            check_writable(self.args.output_dir)
        #: the model as trained: wrapped in DistributedDataParallel across several processes (FSDP2
        #: shards ``model`` itself, in place)
        self.model_wrapped: torch.nn.Module = self.model
        self.data_collator = data_collator
        self.train_dataset = train_dataset
        self.eval_dataset = eval_dataset
        self.compute_metrics = compute_metrics
        self.preprocess_logits_for_metrics = preprocess_logits_for_metrics
        self.processing_class = processing_class
        #: the batch keys that are labels (``args.label_names``, else found in ``model.forward``)
        names = self.args.label_names
        self.label_names = default_label_names(self.model) if names is None else names
        self.label_smoother = label_smoother(model, self.args)
        self.optimizer, self.lr_scheduler = optimizers
        self._own_scheduler = False  # built by train() for its run, so the next train() builds another
        self.lifecycle = lifecycle
        self.state = self._new_state()
        self.control = TrainerControl()
        self.run: TrainingRun | None = None
        self.call = EntryCall()
        self.signals = SignalWatch(self.args.preemption_signals, self.args.save_on_interrupt)
        self.callback_kwargs: dict[str, Any] = {}
        self._refresh_kwargs()
        self.tracer = Tracer()  # counts and times every transition and callback; trace.json after train()
        display = PrinterCallback if self.args.disable_tqdm else ProgressCallback
        every = [DefaultFlowCallback, *tracker_callbacks(self.args), *(callbacks or []), display]
        self.callback_handler = CallbackHandler(self.lifecycle, self, every, self.tracer, dispatch)
        self.dispatcher.fire("init_end")

    # -- callbacks -------------------------------------------------------------------------------
    @property
    def callbacks(self) -> list[TrainerCallback]:
        """The callbacks in firing order (``self.callback_handler.callbacks``)."""
        return self.callback_handler.callbacks

    @property
    def dispatcher(self) -> Dispatcher:
        """The lifecycle compiled with the current callbacks (rebuilt after a callback change)."""
        return self.callback_handler.dispatcher

    def add_callback(self, callback: CallbackSpec) -> None:
        """Append a callback (class or instance); it runs after those already there."""
        self.callback_handler.add_callback(callback)

    def pop_callback(self, callback: CallbackSpec) -> TrainerCallback | None:
        """Remove and return the first callback that is ``callback`` (or an instance of that class)."""
        return self.callback_handler.pop_callback(callback)

    def remove_callback(self, callback: CallbackSpec) -> None:
        """Remove the first callback that is ``callback`` (or an instance of that class)."""
        self.callback_handler.remove_callback(callback)

    def _refresh_kwargs(self, **changes: Any) -> None:
        """The keyword arguments every Hugging Face style callback receives, updated in place (the
        compiled lifecycle holds the dict)."""
        self.callback_kwargs.update(
            {
                "model": self.model,
                "processing_class": self.processing_class,
                "optimizer": self.optimizer,
                "lr_scheduler": self.lr_scheduler,
                "train_dataloader": self.callback_kwargs.get("train_dataloader"),
                "eval_dataloader": self.callback_kwargs.get("eval_dataloader"),
                **changes,
            }
        )

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
        """Run the lifecycle from ``idle`` (``prepare``, ``train_begin``, ...) until it is idle again.

        Before any work, ``output_dir`` is made writable, locked for the whole call, and checked for
        another run's checkpoints (:mod:`lifecycle.checkpoint.ownership`)."""
        self._ensure_idle("train")
        check_training(self.args, self.train_dataset, self.eval_dataset)
        with ExitStack() as held:
            held.enter_context(self.signals)
            self.call = EntryCall(
                resume_from=claim_output_dir(held, self.args, self.topology, resume_from_checkpoint)
            )
            try:
                self.dispatcher.fire("to_prepare")
            except BaseException as exc:
                self._close_failed_run(exc)
                raise
            self._write_trace()
        assert self.run is not None and self.run.output is not None
        return self.run.output

    def evaluate(
        self,
        eval_dataset: Dataset[Any] | None = None,
        ignore_keys: list[str] | None = None,
        metric_key_prefix: str = "eval",
    ) -> dict[str, float]:
        """Run the evaluation loop (``prediction_step`` per batch, ``log``, ``evaluate``); output keys in
        ``ignore_keys`` are left out of the predictions.

        A dict of datasets is evaluated one after the other, each with its name in its metrics'
        prefix (``eval_<name>_loss``) and its own ``log`` and ``evaluate``; the merged metrics return.
        """
        self._ensure_idle("evaluate")
        self.state.position.evaluations_left = 0  # a new evaluation, whatever a failed one left
        self.call = EntryCall(dataset=eval_dataset, prefix=metric_key_prefix, ignore_keys=ignore_keys)
        self.dispatcher.fire("to_evaluate")
        return self.call.metrics

    def predict(
        self,
        test_dataset: Dataset[Any],
        ignore_keys: list[str] | None = None,
        metric_key_prefix: str = "test",
    ) -> PredictionOutput:
        """Run the prediction loop (``prediction_step`` per batch, ``predict``)."""
        self._ensure_idle("predict")
        self.call = EntryCall(dataset=test_dataset, prefix=metric_key_prefix, ignore_keys=ignore_keys)
        self.dispatcher.fire("to_predict")
        assert self.call.prediction is not None
        return self.call.prediction

    # -- state entry actions: training ------------------------------------------------------------
    def begin_training(self) -> None:
        """State ``prepare``: data, step plan, optimizer and schedule; the checkpoint loaded when
        resuming; ``self.run`` holds them all."""
        args = self.args
        loader = self.get_train_dataloader()
        plan = plan_steps(args, length(loader))
        if self.model_wrapped is self.model:  # before the optimizer: FSDP2 replaces the parameters
            self.model_wrapped = prepare_model(self.model, args, self.topology, self.device)
        if self.optimizer is None:
            self.optimizer = create_optimizer(self.model, args)
        if self.lr_scheduler is None or self._own_scheduler:
            self.lr_scheduler = create_scheduler(self.optimizer, args, plan.max_steps)
            self._own_scheduler = True
        if steps_on_metric(self.lr_scheduler) and args.metric_for_best_model is None:
            raise ArgumentError(
                f"{type(self.lr_scheduler).__name__} steps on the evaluation metric: set "
                "TrainingArguments.metric_for_best_model (and an eval_strategy)"
            )
        wrapped = self.model_wrapped
        ddp = getattr(wrapped, "_orig_mod", wrapped)  # under torch.compile's wrapper
        watch = NonFiniteWatch(self.device, args.nonfinite, self.topology.distributed)
        run = self.run = TrainingRun(
            loader=loader,
            plan=plan,
            resume_method=resume_method(loader),
            forward=make_forward(wrapped, args, self.device, self._loss_hook()),
            loss=LossTally(
                self.device, args.logging_nan_inf_filter, census=watch.losses, marks=watch.loss_marks
            ),
            watch=watch,
            no_sync=ddp.no_sync if isinstance(ddp, DistributedDataParallel) else None,
            metric_schedule=steps_on_metric(self.lr_scheduler),
            scaler=torch.amp.GradScaler(self.device.type) if args.fp16 else None,
            resume_from=self.call.resume_from,
        )
        if args.fsdp:
            from lifecycle.fsdp import fit_run

            fit_run(run, ddp, args, self.device, self.topology.distributed)
        run.forward = first_checked(run.forward, run)  # a batch that is not a dict is refused at once
        run.parameters = list(self.model.parameters())  # once: wrapping (FSDP2) has replaced them
        self.control.should_training_stop = False  # a new run; a resumed one restores the flag
        if run.resume_from is not None:
            self.state = load_training(self, run, run.resume_from)
        else:
            self.state = self._new_state()
        self.state.run_id = self.state.run_id or new_run_id()  # a checkpoint from before run ids: one now
        carry = run.resumed.loss if run.resumed is not None else LossCarry()
        run.loss.total, run.grad_norm, run.learning_rate = carry.restore(self.device)
        run.loss.drained = carry.drained
        state = self.state
        state.is_world_process_zero = self.topology.is_main
        state.is_local_process_zero = self.topology.local_rank == 0
        plan.apply_to(state, args.per_device_train_batch_size)
        state.position.training = True
        run.first_step = run.watch.since = state.global_step
        run.start_time = time.time()
        self.signals.deferring = True  # Ctrl-C waits for a step boundary from here to finish
        self._refresh_kwargs(train_dataloader=loader)
        self.model.train()
        self.model.zero_grad(set_to_none=True)

    def begin_epoch(self) -> None:
        """State ``epoch``: the epoch's batches, from where a resumed run stopped."""
        run, p = self._training(), self.state.position
        resuming = p.epoch_open  # restored from a checkpoint taken mid-epoch
        saved, run.resumed = run.resumed, None
        if saved is not None and not resuming:  # the uninterrupted run opens this epoch after the save
            restore_rng(saved.rng)
        sampler: Any = getattr(run.loader, "sampler", None)
        if isinstance(sampler, EpochSampler):
            start = p.batch_index * self.args.per_device_train_batch_size if resuming else 0
            sampler.set_epoch(p.epoch_index, start=start)
        elif callable(getattr(sampler, "set_epoch", None)):  # DistributedSampler and its kind
            sampler.set_epoch(p.epoch_index)
        if not resuming:
            p.batch_index = 0
            p.window_end = 0
        p.epoch_open = True
        run.batches, run.epoch_rng = epoch_batches(
            run.loader,
            run.resume_method,
            streaming=run.plan.streaming,
            done=p.batch_index if resuming else 0,
            epoch_rng=saved.epoch_rng if saved is not None else None,
            passes=saved.passes if saved is not None else 0,
        )
        if saved is not None and resuming:  # the uninterrupted run drew the loader's seed long ago
            restore_rng(saved.rng)
            self.control.should_epoch_stop = saved.control.get("should_epoch_stop", False)

    def forward_backward(self) -> None:
        """State ``step``: forward and backward one micro-batch; clip at the end of its window."""
        run, p = self.run, self.state.position
        assert run is not None, _OUTSIDE
        if p.batch_index >= p.window_end:  # the first micro-batch of a window
            p.window_end = min(p.batch_index + self.args.gradient_accumulation_steps, p.batches_in_epoch)
            run.window = p.window_end - p.batch_index
            run.loss.begin_step()
        batch = next(run.batches)
        if run.no_sync is not None and p.batch_index + 1 < p.window_end:
            with run.no_sync():  # DDP all-reduces a window's gradient once, at its last micro-batch
                self._learn_from(run, batch)
        else:
            self._learn_from(run, batch)
        p.batch_index += 1
        if p.batch_index == p.window_end and self.args.max_grad_norm > 0:
            if run.scaler is not None:
                assert self.optimizer is not None
                run.scaler.unscale_(self.optimizer)
            run.grad_norm = run.clip(run.parameters, self.args.max_grad_norm)
            if run.scaler is None:  # under fp16 an overflow is the scaler's to skip, not an error
                run.watch.add_norm(run.grad_norm)

    @staticmethod
    def _learn_from(run: TrainingRun, batch: Batch) -> None:
        """Forward and backward one micro-batch; its loss joins the on-device total."""
        loss = run.forward(batch)
        if run.window > 1:  # the window's gradient is the mean over its micro-batches
            loss = loss / run.window
        (loss if run.scaler is None else run.scaler.scale(loss)).backward()
        run.loss.add(loss)
        if run.watch.policy == "skip":
            run.watch.window.append(loss.detach())

    def optimizer_update(self) -> None:
        """State ``optimize``: ``optimizer.step()`` (fp16: skipped when gradients overflowed;
        ``nonfinite="skip"``: skipped when a loss or the gradient is not finite, the step still counts)."""
        run = self.run
        assert run is not None, _OUTSIDE
        scaler = run.scaler
        assert self.optimizer is not None
        if run.watch.policy == "skip":
            norm = run.grad_norm if self.args.max_grad_norm > 0 else None
            if run.watch.skips(self.model, norm, scaler is not None, self.state.global_step + 1):
                if scaler is not None:  # its per-step state cleared, its scale kept
                    scaler.update(scaler.get_scale())
                return
        if scaler is None:
            self.optimizer.step()
        else:
            scaler.step(self.optimizer)
            scaler.update()

    def advance_schedule(self) -> None:
        """State ``advance``: scheduler step, gradients zeroed, ``global_step`` and ``epoch`` advanced."""
        run, state = self.run, self.state
        assert run is not None, _OUTSIDE
        p = state.position
        if run.metric_schedule:  # stepped after each evaluation (judge_evaluation)
            assert self.optimizer is not None
            run.learning_rate = self.optimizer.param_groups[0]["lr"]
        else:
            run.learning_rate = self.lr_scheduler.get_last_lr()[0]
            self.lr_scheduler.step()
        for parameter in run.parameters:  # model.zero_grad(set_to_none=True), without its module walk
            parameter.grad = None
        state.global_step += 1
        state.epoch = p.epoch_index + p.batch_index / p.batches_in_epoch

    def close_epoch(self) -> None:
        """Effect of ``epoch_end``: the epoch is closed and the next one counted."""
        p = self.state.position
        p.epoch_open = False
        p.epoch_index += 1
        p.batch_index = 0
        p.window_end = 0

    def agree_on_stop(self) -> None:
        """State ``boundary``: all ranks stop, log, evaluate or save if one asks to; after a stopping
        signal (SIGTERM, Ctrl-C: :mod:`lifecycle.preemption`), a checkpoint is asked for, and at the
        boundary after it the run ends."""
        if self.topology.distributed:
            distributed.agree_on_stop(self.control, self.device, self.signals)
        if self.signals.received is not None:
            self._stop_on_signal()

    def collect_train_logs(self) -> dict[str, Any]:
        """State ``log``: the mean loss since the last log, the gradient norm and learning rate (the
        ``logs`` of the ``log`` transition that follows)."""
        run, state = self._training(), self.state
        run.loss.fold()
        run.watch.check(state.global_step, "at the log")
        total = run.loss.drain()
        if self.topology.distributed:
            total = distributed.mean_over_ranks(total, self.device)
        logs: dict[str, float] = {"loss": total / (state.global_step - state.position.logged_step)}
        if run.grad_norm is not None:
            logs["grad_norm"] = float(run.grad_norm)
        logs["learning_rate"] = run.learning_rate
        state.position.logged_step = state.global_step
        return {"logs": self._record_log(logs)}

    def summarize_training(self) -> dict[str, Any]:
        """State ``finish``: the training summary: runtime and throughput of this process's steps, and
        the mean training loss of the whole run (a resumed run's included, carried in checkpoints);
        logged by the ``log`` transition that follows."""
        self.signals.deferring = False
        run, state = self._training(), self.state
        seal_pending(run)  # a checkpoint still being written in the background is made whole
        run.loss.fold()
        run.watch.check(state.global_step, "at the end of training")
        run.loss.drain()
        steps = state.global_step - run.first_step
        runtime = time.time() - run.start_time
        samples = steps * self.args.per_device_train_batch_size * self.args.gradient_accumulation_steps
        metrics = {
            "train_runtime": round(runtime, 4),
            "train_samples_per_second": round(samples / runtime, 3) if runtime else 0.0,
            "train_steps_per_second": round(steps / runtime, 3) if runtime else 0.0,
            "total_flos": state.total_flos,
            "train_loss": run.loss.drained / state.global_step if state.global_step else 0.0,
        }
        run.output = TrainOutput(state.global_step, metrics["train_loss"], metrics)
        return {"logs": self._record_log(dict(metrics))}

    def end_training(self) -> None:
        """State ``end``: the best model loaded, once verified, when ``load_best_model_at_end`` asks
        for it."""
        if self.args.load_best_model_at_end:
            load_best_model(self)
        self.state.position.training = False

    # -- state entry actions: evaluation, saving, prediction -------------------------------------
    def run_evaluation(self) -> dict[str, Any]:
        """State ``evaluate``: one dataset's evaluation loop; its metrics logged (``log``) and handed
        to ``evaluate``'s callbacks."""
        call, p = self.call, self.state.position
        if p.evaluations_left == 0:  # a new evaluation: one pass per dataset
            dataset = call.dataset if call.dataset is not None else self.eval_dataset
            call.eval_sets = evaluation_sets(dataset, call.prefix)
            p.evaluations_left = len(call.eval_sets)
            call.metrics = {}
        dataset, prefix = call.eval_sets[-p.evaluations_left]
        p.evaluations_left -= 1
        output = self._prediction_loop(self.get_eval_dataloader(dataset), prefix, evaluating=True)
        p.evaluated_step = self.state.global_step
        self._record_log(output.metrics)  # adds the epoch: evaluate()'s callbacks and result have it
        call.metrics.update(output.metrics)
        self.dispatcher.emit("log", logs=output.metrics)
        return {"metrics": output.metrics}

    def judge_evaluation(self) -> None:
        """State ``judge``: the best metric tracked; save strategy ``best`` flags a save on a new best; a
        schedule that steps on the metric (``reduce_lr_on_plateau``) steps."""
        args, state, metrics = self.args, self.state, self.call.metrics
        name = args.metric_for_best_model
        if name is None:
            return
        key = name if name.startswith("eval_") else f"eval_{name}"
        if key not in metrics:
            raise KeyError(
                f"metric_for_best_model={name!r}: {key!r} is not among the evaluation metrics "
                f"{sorted(metrics)}"
            )
        value, best = metrics[key], state.best_metric
        if self._training().metric_schedule:
            self.lr_scheduler.step(value)
        finite = math.isfinite(value)  # a nan or inf score never becomes the best: none could beat it
        if not finite:
            logger.warning("%s is %s at step %d: never the best model", key, value, state.global_step)
        better = best is None or (value > best if args.greater_is_better else value < best)
        new_best = finite and better
        if new_best:
            state.best_metric = value
            if args.save_strategy != "no":
                state.best_global_step = state.global_step
        if args.save_strategy == "best":
            self.control.should_save = new_best

    def save_checkpoint(self) -> None:
        """State ``save``: ``checkpoint-<global_step>`` written (:mod:`lifecycle.checkpoint.training`),
        once ``nonfinite="stop"`` has found nothing to stop for."""
        run = self._training()
        run.loss.fold()
        run.watch.check(self.state.global_step, "before saving")
        save_training(self, run)

    def run_prediction(self) -> dict[str, Any]:
        """State ``predict``: the prediction loop over ``predict()``'s dataset."""
        call = self.call
        call.prediction = self._prediction_loop(
            self.get_test_dataloader(call.dataset), call.prefix, evaluating=False
        )
        return {"metrics": call.prediction.metrics}

    def save_model(self, output_dir: str | Path | None = None) -> None:
        """Save the model for ``from_pretrained`` (its ``save_pretrained``; any other model as
        ``model.safetensors``) with the processing class, into ``output_dir`` (default: the run's)."""
        weights = None
        if self.args.fsdp:  # every rank helps gather the full weights
            from lifecycle.checkpoint.fsdp import full_weights

            weights = full_weights(self.model)
        if self.topology.is_main:
            folder = Path(output_dir if output_dir is not None else self.args.output_dir)
            save_model_folder(folder, self.model, self.processing_class, self.args, weights)
        distributed.barrier()

    # -- transformers' override hooks -------------------------------------------------------------
    def compute_loss(
        self,
        model: torch.nn.Module,
        inputs: Batch,
        return_outputs: bool = False,
        num_items_in_batch: int | None = None,
    ) -> Any:
        """The loss of one batch: ``model(**inputs)["loss"]`` (a tuple's first item). Override it to compute
        another, as in transformers; it serves training and, for batches with their labels, evaluation
        (``return_outputs=True`` then, and ``(loss, outputs)`` is expected). ``label_smoothing_factor``
        smooths the loss of batches with ``labels`` here."""
        if self.label_smoother is not None and "labels" in inputs:
            return self.label_smoother.compute_loss(model, inputs, return_outputs)
        outputs = model(**inputs)
        loss = loss_of(outputs, inputs)
        return (loss, outputs) if return_outputs else loss

    def get_train_dataloader(self) -> Any:
        """The training batches; override it to train from a loader of your own.

        The default (a ``DataLoader`` over an :class:`~lifecycle.EpochSampler`) resumes mid-epoch
        without loading a skipped batch; a loader with ``state_dict`` (torchdata's ``StatefulDataLoader``)
        is saved and restored; any other is replayed (:mod:`lifecycle.data`, docs/checkpoints.md).
        """
        return self._loader(self.train_dataset, self.args.per_device_train_batch_size, train=True)

    def get_eval_dataloader(self, eval_dataset: Any = None) -> Any:
        """The evaluation batches of ``eval_dataset`` (default: the trainer's); override to change."""
        dataset = eval_dataset if eval_dataset is not None else self.eval_dataset
        return self._loader(dataset, self.args.per_device_eval_batch_size, train=False)

    def get_test_dataloader(self, test_dataset: Any) -> Any:
        """The prediction batches of ``test_dataset``; override to change."""
        return self._loader(test_dataset, self.args.per_device_eval_batch_size, train=False)

    # -- helpers ----------------------------------------------------------------------------------
    def _training(self) -> TrainingRun:
        """The training run under way (the states of training run only inside one)."""
        run = self.run
        assert run is not None, _OUTSIDE
        return run

    def _loss_hook(self) -> Callable[..., Any] | None:
        """``compute_loss`` where it does more than ``model(**inputs)["loss"]`` (overridden, or label
        smoothing), else ``None``: the loops then call the model directly."""
        own_loss = type(self).compute_loss is not Trainer.compute_loss
        return self.compute_loss if own_loss or self.label_smoother is not None else None

    def _stop_on_signal(self) -> None:
        state, signals = self.state, self.signals
        unsaved = state.global_step > max(state.position.saved_step, 0)
        if signals.wants_save and unsaved:
            self.control.should_save = True  # written next; this boundary is entered again after it
            return
        folder = f"{self.args.output_dir}/checkpoint-{state.global_step}"
        raise signals.stop(state.global_step, folder if signals.wants_save and state.global_step else None)

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

    def _new_state(self) -> TrainerState:
        top = self.topology
        return TrainerState(
            epoch=0.0, is_world_process_zero=top.is_main, is_local_process_zero=top.local_rank == 0
        )

    def _loader(self, dataset: Any, batch_size: int, *, train: bool) -> Any:
        """Training data is shared out among the ranks, and so is evaluation data (lifecycle.shards)."""
        return loader_for(
            dataset, batch_size, self.data_collator, self.args, self.topology, self.device, train
        )

    def _record_log(self, logs: dict[str, Any]) -> dict[str, Any]:
        """``logs`` with the epoch, recorded in the log history."""
        if self.state.epoch is not None:
            logs["epoch"] = self.state.epoch
        self.state.log_history.append({**logs, "step": self.state.global_step})
        return logs

    def _prediction_loop(self, loader: Any, prefix: str, *, evaluating: bool) -> PredictionOutput:
        """Evaluation gathers no predictions without ``compute_metrics`` (as transformers)."""
        self._refresh_kwargs(eval_dataloader=loader)
        setup = EvalSetup.of(self, evaluating=evaluating)
        return prediction_loop(
            self.model,
            loader,
            prefix,
            args=self.args,
            device=self.device,
            setup=setup,
            compute_metrics=self.compute_metrics,
            preprocess_logits=self.preprocess_logits_for_metrics,
            on_batch=lambda: self.dispatcher.emit("prediction_step"),
        )
