"""Trainer: the work each lifecycle state performs. The machine decides what comes next.

Every public method of the lifecycle's states is an *entry action* named in
:data:`~lifecycle.TRAINING_LIFECYCLE`; none of them looks at a control flag. ``train()``,
``evaluate()`` and ``predict()`` fire one transition out of ``idle`` and let the compiled lifecycle
run until it rests there again::

    idle --train_begin--> train --epoch_begin--> epoch --step_begin--> step --pre_optimizer_step-->
    optimize --optimizer_step--> advance --step_end--> boundary --(log? evaluate? save?)--> ...
    boundary --step_begin | epoch_end | epoch_begin | to_finish--> ... finish --log--> end --train_end--> idle
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from lifecycle import checkpoint as ckpt
from lifecycle.args import TrainingArguments
from lifecycle.callbacks import DefaultFlowCallback, PrinterCallback, ProgressCallback, TrainerCallback
from lifecycle.control import TrainerControl
from lifecycle.data import EpochSampler
from lifecycle.default import TRAINING_LIFECYCLE
from lifecycle.dispatch import Dispatcher
from lifecycle.machine import Lifecycle
from lifecycle.optim import default_optimizer, default_scheduler
from lifecycle.outputs import EvalPrediction, PredictionOutput, TrainOutput
from lifecycle.state import TrainerState

__all__ = ["Trainer"]

logger = logging.getLogger(__name__)

Batch = dict[str, Any]
CallbackSpec = TrainerCallback | type[TrainerCallback]
_FOLD = 256  # losses kept on device before being summed into one tensor


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
        self.device = self._pick_device()
        self.model = model.to(self.device)
        self.data_collator = data_collator
        self.train_dataset = train_dataset
        self.eval_dataset = eval_dataset
        self.compute_metrics = compute_metrics
        self.processing_class = processing_class
        self.optimizer, self.lr_scheduler = optimizers
        self.lifecycle = lifecycle
        self.state = TrainerState()
        self.control = TrainerControl()
        self.payload: dict[str, Any] = {}
        self.callback_kwargs: dict[str, Any] = {}
        self.callbacks: list[TrainerCallback] = []
        from lifecycle.integrations import tracker_callbacks

        display = PrinterCallback if self.args.disable_tqdm else ProgressCallback
        for cb in [DefaultFlowCallback, *tracker_callbacks(self.args), *(callbacks or []), display]:
            self._add(cb)
        self._refresh_kwargs()
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
            self._dispatcher = Dispatcher(self.lifecycle, self, self.callbacks)
        return self._dispatcher

    def _recompile(self) -> None:
        if self._dispatcher is None:
            return
        where = self._dispatcher.current
        counts = self._dispatcher.counts
        self._dispatcher = Dispatcher(self.lifecycle, self, self.callbacks)
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
        from lifecycle.integrations import find_tracker

        return find_tracker(self.callbacks, name, unwrap=unwrap)

    # -- public entry points ----------------------------------------------------------------------
    def train(self, resume_from_checkpoint: str | Path | bool | None = None) -> TrainOutput:
        """Run the lifecycle from ``train_begin`` until it is idle again."""
        if self.train_dataset is None:
            raise ValueError("Trainer.train() needs a train_dataset")
        self._resume_from = self._find_checkpoint(resume_from_checkpoint)
        self.dispatcher.fire("train_begin")
        return self._train_output

    def evaluate(
        self, eval_dataset: Dataset[Any] | None = None, metric_key_prefix: str = "eval"
    ) -> dict[str, float]:
        """Run the evaluation loop (``prediction_step`` × batches, ``log``, ``evaluate``)."""
        self._eval_request = (eval_dataset, metric_key_prefix)
        self.dispatcher.fire("to_evaluate")
        return self._last_metrics

    def predict(self, test_dataset: Dataset[Any], metric_key_prefix: str = "test") -> PredictionOutput:
        """Run the prediction loop (``prediction_step`` × batches, ``predict``)."""
        self._predict_request = (test_dataset, metric_key_prefix)
        self.dispatcher.fire("to_predict")
        return self._prediction

    # -- state entry actions: training ------------------------------------------------------------
    def begin_training(self) -> None:
        args, state = self.args, self.state
        self.train_dataloader = self._dataloader(
            self.train_dataset, args.per_device_train_batch_size, train=True
        )
        batches = len(self.train_dataloader)
        updates_per_epoch = max(math.ceil(batches / args.gradient_accumulation_steps), 1)
        if args.max_steps > 0:
            max_steps = args.max_steps
            epochs = math.ceil(max_steps / updates_per_epoch)
        else:
            max_steps = math.ceil(args.num_train_epochs * updates_per_epoch)
            epochs = math.ceil(args.num_train_epochs)
        if self.optimizer is None:
            self.optimizer = default_optimizer(self.model, args)
        if self.lr_scheduler is None:
            self.lr_scheduler = default_scheduler(self.optimizer, args, max_steps)
        if self._resume_from is not None:
            self._load_checkpoint(self._resume_from)
        else:
            self.state = TrainerState(epoch=0.0)
        state = self.state
        state.max_steps = max_steps
        state.num_train_epochs = epochs
        state.train_batch_size = args.per_device_train_batch_size
        state.logging_steps = self._steps(args.logging_steps, max_steps)
        state.eval_steps = self._steps(args.eval_steps or args.logging_steps, max_steps)
        state.save_steps = self._steps(args.save_steps, max_steps)
        state.position.training = True
        state.position.batches_in_epoch = batches
        self._losses: list[torch.Tensor] = []
        self._loss_total = torch.zeros((), device=self.device)
        self._loss_scalar = 0.0
        self._grad_norm: torch.Tensor | None = None
        self._learning_rate = 0.0
        self._first_step = state.global_step
        self._start_time = time.time()
        self._refresh_kwargs(train_dataloader=self.train_dataloader)
        self._forward = self._make_forward()
        self.model.train()
        self.model.zero_grad(set_to_none=True)

    def begin_epoch(self) -> None:
        p = self.state.position
        resuming = p.epoch_open  # restored from a checkpoint taken mid-epoch
        sampler = self.train_dataloader.sampler
        if isinstance(sampler, EpochSampler):
            sampler.set_epoch(
                p.epoch_index, start=p.batch_index * self.args.per_device_train_batch_size if resuming else 0
            )
        if not resuming:
            p.batch_index = 0
            p.window_end = 0
        p.epoch_open = True
        self._batches: Iterator[Batch] = iter(self.train_dataloader)

    def forward_backward(self) -> None:
        p = self.state.position
        if p.batch_index >= p.window_end:  # the first micro-batch of a window
            p.window_end = min(p.batch_index + self.args.gradient_accumulation_steps, p.batches_in_epoch)
            self._window = p.window_end - p.batch_index
        batch = self._to_device(next(self._batches))
        loss = self._forward(batch) / self._window
        loss.backward()
        self._losses.append(loss.detach())
        if len(self._losses) == _FOLD:
            self._loss_total = self._loss_total + torch.stack(self._losses).sum()
            self._losses = []
        p.batch_index += 1
        if p.batch_index == p.window_end and self.args.max_grad_norm > 0:
            self._grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.args.max_grad_norm)

    def optimizer_update(self) -> None:
        assert self.optimizer is not None
        self.optimizer.step()

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
        total = self._drain_losses()
        logs: dict[str, float] = {"loss": total / (state.global_step - state.position.logged_step)}
        if self._grad_norm is not None:
            logs["grad_norm"] = float(self._grad_norm)
        logs["learning_rate"] = self._learning_rate
        state.position.logged_step = state.global_step
        self._record_log(logs)

    def summarize_training(self) -> None:
        state = self.state
        self._drain_losses()
        steps = state.global_step - self._first_step
        runtime = time.time() - self._start_time
        samples = len(self.train_dataset) * steps / max(state.max_steps, 1) * state.num_train_epochs  # type: ignore[arg-type]
        metrics = {
            "train_runtime": round(runtime, 4),
            "train_samples_per_second": round(samples / runtime, 3) if runtime else 0.0,
            "train_steps_per_second": round(steps / runtime, 3) if runtime else 0.0,
            "total_flos": state.total_flos,
            "train_loss": self._loss_scalar / max(steps, 0.001),
        }
        self._train_output = TrainOutput(state.global_step, metrics["train_loss"], metrics)
        self._record_log(dict(metrics))

    def end_training(self) -> None:
        state = self.state
        if self.args.load_best_model_at_end and state.best_model_checkpoint:
            self._load_weights(Path(state.best_model_checkpoint))
        state.position.training = False

    # -- state entry actions: evaluation, saving, prediction -------------------------------------
    def run_evaluation(self) -> None:
        dataset, prefix = getattr(self, "_eval_request", None) or (None, "eval")
        self._eval_request = None
        dataset = dataset if dataset is not None else self.eval_dataset
        if dataset is None:
            raise ValueError(
                "evaluation needs an eval_dataset (Trainer(eval_dataset=...) or evaluate(dataset))"
            )
        output = self._prediction_loop(dataset, prefix)
        self._last_metrics = output.metrics
        self._record_log(dict(output.metrics))
        self.dispatcher.emit("log")
        self.payload = {"metrics": output.metrics}

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
        folder = ckpt.write_checkpoint(args.output_dir, state.global_step, self._write_checkpoint_files)
        if state.best_global_step == state.global_step:
            state.best_model_checkpoint = str(folder)
        keep = {Path(state.best_model_checkpoint)} if state.best_model_checkpoint else set()
        ckpt.rotate_checkpoints(args.output_dir, args.save_total_limit, keep | {folder})

    def run_prediction(self) -> None:
        dataset, prefix = self._predict_request
        self._prediction = self._prediction_loop(dataset, prefix)
        self.payload = {"metrics": self._prediction.metrics}

    # -- helpers ----------------------------------------------------------------------------------
    def _pick_device(self) -> torch.device:
        if not self.args.use_cpu and torch.cuda.is_available():
            return torch.device("cuda")
        if self.args.fp16:
            raise ValueError("TrainingArguments.fp16 needs a CUDA device; use bf16 on the CPU")
        return torch.device("cpu")

    @staticmethod
    def _steps(value: float, max_steps: int) -> int:
        """``*_steps`` below 1 are a fraction of ``max_steps``."""
        return math.ceil(max_steps * value) if value < 1 else int(value)

    def _dataloader(self, dataset: Any, batch_size: int, *, train: bool) -> DataLoader[Any]:
        sampler = EpochSampler(dataset, seed=self.args.data_seed or self.args.seed, shuffle=train)
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

    def _make_forward(self) -> Callable[[Batch], torch.Tensor]:
        model = self.model
        dtype = torch.bfloat16 if self.args.bf16 else torch.float16 if self.args.fp16 else None

        def plain(batch: Batch) -> torch.Tensor:
            return _loss_of(model(**batch))

        if dtype is None:
            return plain

        def autocast(batch: Batch) -> torch.Tensor:
            with torch.autocast(self.device.type, dtype=dtype):
                return _loss_of(model(**batch))

        return autocast

    def _drain_losses(self) -> float:
        """The summed loss since the last drain, as a float (the one host sync per log)."""
        total = self._loss_total
        if self._losses:
            total = total + torch.stack(self._losses).sum()
        value = float(total)
        self._losses = []
        self._loss_total = torch.zeros((), device=self.device)
        self._loss_scalar += value
        return value

    def _record_log(self, logs: dict[str, Any]) -> None:
        if self.state.epoch is not None:
            logs["epoch"] = self.state.epoch
        self.state.log_history.append({**logs, "step": self.state.global_step})
        self.payload = {"logs": logs}

    @torch.no_grad()
    def _prediction_loop(self, dataset: Any, prefix: str) -> PredictionOutput:
        loader = self._dataloader(dataset, self.args.per_device_eval_batch_size, train=False)
        self._refresh_kwargs(eval_dataloader=loader)
        was_training = self.model.training
        self.model.eval()
        start = time.time()
        losses, predictions, labels = [], [], []
        want_outputs = self.compute_metrics is not None or prefix == "test"
        for batch in loader:
            batch = self._to_device(batch)
            outputs = self.model(**batch)
            loss = _maybe_loss(outputs)
            if loss is not None:
                losses.append(loss.detach().float() * _batch_size(batch))
            if want_outputs:
                predictions.append(_logits_of(outputs))
                if "labels" in batch:
                    labels.append(batch["labels"].detach().cpu())
            self.dispatcher.emit("prediction_step")
        self.model.train(was_training)
        runtime = time.time() - start
        metrics: dict[str, float] = {}
        if losses:
            metrics[f"{prefix}_loss"] = float(torch.stack(losses).sum()) / len(dataset)
        preds = torch.cat(predictions).numpy() if predictions and predictions[0] is not None else None
        label_ids = torch.cat(labels).numpy() if labels else None
        if self.compute_metrics is not None and preds is not None:
            for key, value in self.compute_metrics(EvalPrediction(preds, label_ids)).items():
                metrics[key if key.startswith(f"{prefix}_") else f"{prefix}_{key}"] = value
        metrics[f"{prefix}_runtime"] = round(runtime, 4)
        metrics[f"{prefix}_samples_per_second"] = round(len(dataset) / runtime, 3) if runtime else 0.0
        metrics[f"{prefix}_steps_per_second"] = round(len(loader) / runtime, 3) if runtime else 0.0
        return PredictionOutput(preds, label_ids, metrics)

    # -- checkpoints ------------------------------------------------------------------------------
    def _write_checkpoint_files(self, folder: Path) -> None:
        from safetensors.torch import save_model

        save_model(self.model, str(folder / ckpt.WEIGHTS_FILE))
        if self.optimizer is not None:
            torch.save(self.optimizer.state_dict(), folder / "optimizer.pt")
        if self.lr_scheduler is not None:
            torch.save(self.lr_scheduler.state_dict(), folder / "scheduler.pt")
        self.state.stateful_callbacks = {
            type(cb).__name__: cb.state_dict() for cb in self.callbacks if hasattr(cb, "state_dict")
        }
        self.state.save_to_json(folder / ckpt.STATE_FILE)

    def _find_checkpoint(self, resume: str | Path | bool | None) -> Path | None:
        if resume is None or resume is False:
            return None
        if resume is True:
            found = ckpt.newest_valid_checkpoint(self.args.output_dir, logger.warning)
            if found is None:
                raise ckpt.CheckpointError(f"no valid checkpoint to resume from in {self.args.output_dir}")
            return found
        folder = Path(resume)
        ckpt.verify_checkpoint(folder)
        return folder

    def _load_weights(self, folder: Path) -> None:
        from safetensors.torch import load_model

        load_model(self.model, str(folder / ckpt.WEIGHTS_FILE), device=str(self.device))

    def _load_checkpoint(self, folder: Path) -> None:
        self._load_weights(folder)
        assert self.optimizer is not None
        self.optimizer.load_state_dict(torch.load(folder / "optimizer.pt", weights_only=True))
        if (folder / "scheduler.pt").exists():
            self.lr_scheduler.load_state_dict(torch.load(folder / "scheduler.pt", weights_only=True))
        self.state = TrainerState.load_from_json(folder / ckpt.STATE_FILE)
        if self.args.restore_callback_states_from_checkpoint:
            for cb in self.callbacks:
                saved = self.state.stateful_callbacks.get(type(cb).__name__)
                if saved is not None and hasattr(cb, "load_state_dict"):
                    cb.load_state_dict(saved)


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
