"""One function per training loop, each training a workload for ``steps`` optimizer steps and timing it.

Every loop times its training alone, from its own "training starts" hook to its "training ended" hook
(building the model, the optimizer and the trainer is left out, as it is for the hand-written loop; on
CUDA the clock starts and stops after a device synchronize). Each gets the same model, data, batch
size, optimizer and schedule (:mod:`workloads`); none clips gradients, evaluates or saves. What else
each one runs:

- ``hand``: the bare loop: forward, backward, ``optimizer.step()``, ``scheduler.step()``,
  ``zero_grad(set_to_none=True)``; it logs nothing.
- ``lifecycle``: ``lifecycle.Trainer`` with its default callbacks (flow, progress bar, the JSONL log,
  the trace), the training loss logged every ``logging_steps``.
- ``lifecycle-noop10``: the same with ten more callbacks, each a no-op ``on_step_end``.
- ``ignite``: an Ignite ``Engine`` whose process function is the hand-written step, returning the
  detached loss (``create_supervised_trainer`` would return ``loss.item()``, a host sync per step);
  the scheduler stepped by an ``ITERATION_COMPLETED`` handler. Ignite attaches nothing by default: no
  progress bar, no logging.
- ``lightning``: ``lightning.Trainer.fit`` with its defaults (progress bar, model summary, its default
  logger) except ``enable_checkpointing=False``; ``training_step`` logs the loss with ``self.log``,
  written every ``logging_steps`` (``log_every_n_steps``); the scheduler steps per step.
- ``transformers``: ``transformers.Trainer`` with its default callbacks (flow, progress bar),
  ``report_to="none"``, ``save_strategy="no"``, ``max_grad_norm=0``, the loss logged every
  ``logging_steps``; its other defaults stay (such as the per-step nan/inf check of the loss).

Progress bars draw into whatever the process's stdout/stderr are (the benchmark sends them to a file).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from typing import Any

import attrs
import torch
from workloads import Workload, sgd


@attrs.frozen
class Timing:
    """One loop's run: seconds per optimizer step, the steps it took, torch's intra-op threads."""

    seconds_per_step: float
    steps: int
    threads: int


class Clock:
    """Seconds between :meth:`start` and :meth:`stop` (each after a device synchronize on CUDA)."""

    def __init__(self, device: str):
        self.device, self.began, self.elapsed = device, 0.0, 0.0
        self.threads = 0

    def start(self) -> None:
        self.threads = torch.get_num_threads()  # as the loop runs, after any framework set it
        self._synchronize()  # the model's copy to the device is setup, not training
        self.began = time.perf_counter()

    def stop(self) -> None:
        self._synchronize()
        self.elapsed = time.perf_counter() - self.began

    def _synchronize(self) -> None:
        if self.device == "cuda":
            torch.cuda.synchronize()

    def timing(self, steps: int) -> Timing:
        return Timing(self.elapsed / max(steps, 1), steps, self.threads)


def _loader(workload: Workload, device: str) -> torch.utils.data.DataLoader[Any]:
    return torch.utils.data.DataLoader(
        workload.data(), batch_size=workload.batch_size, shuffle=True, pin_memory=device == "cuda"
    )


def hand_loop(workload: Workload, steps: int, device: str, logging_steps: int) -> Timing:
    model = workload.model().to(device)
    optimizer, scheduler = sgd(model)
    loader = _loader(workload, device)
    clock = Clock(device)
    clock.start()
    done = 0
    while done < steps:
        for batch in loader:
            if device != "cpu":
                batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
            loss = model(**batch)["loss"]
            loss.backward()
            optimizer.step()
            scheduler.step()
            model.zero_grad(set_to_none=True)
            done += 1
            if done == steps:
                break
    clock.stop()
    return clock.timing(done)


def lifecycle_trainer(
    workload: Workload, steps: int, device: str, logging_steps: int, extra_callbacks: int = 0
) -> Timing:
    from lifecycle import Trainer, TrainerCallback, TrainingArguments

    class Stopwatch(TrainerCallback):
        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            clock.start()

        def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            clock.stop()

    class NoOp(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            pass

    clock = Clock(device)
    model = workload.model()
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            output_dir=out,
            max_steps=steps,
            per_device_train_batch_size=workload.batch_size,
            max_grad_norm=0.0,
            save_strategy="no",
            logging_steps=logging_steps,
            use_cpu=device == "cpu",
        )
        callbacks = [Stopwatch(), *(NoOp() for _ in range(extra_callbacks))]
        trainer = Trainer(
            model, args, train_dataset=workload.data(), optimizers=sgd(model), callbacks=callbacks
        )
        trainer.train()
        return clock.timing(trainer.state.global_step)


def lifecycle_noop10(workload: Workload, steps: int, device: str, logging_steps: int) -> Timing:
    return lifecycle_trainer(workload, steps, device, logging_steps, extra_callbacks=10)


def ignite_engine(workload: Workload, steps: int, device: str, logging_steps: int) -> Timing:
    from ignite.engine import Engine, Events

    model = workload.model().to(device)
    optimizer, scheduler = sgd(model)

    def update(engine: Engine, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        if device != "cpu":
            batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
        loss = model(**batch)["loss"]
        loss.backward()
        optimizer.step()
        model.zero_grad(set_to_none=True)
        return loss.detach()

    clock = Clock(device)
    engine = Engine(update)
    engine.add_event_handler(Events.STARTED, lambda _: clock.start())
    engine.add_event_handler(Events.ITERATION_COMPLETED, lambda _: scheduler.step())
    engine.add_event_handler(Events.COMPLETED, lambda _: clock.stop())
    # one "epoch" of exactly `steps` iterations: Ignite restarts the loader when it runs out
    engine.run(_loader(workload, device), max_epochs=1, epoch_length=steps)
    return clock.timing(engine.state.iteration)


def lightning_fit(workload: Workload, steps: int, device: str, logging_steps: int) -> Timing:
    import lightning as L

    class Module(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = workload.model()

        def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
            loss = self.net(**batch)["loss"]
            self.log("loss", loss)
            return loss

        def configure_optimizers(self) -> Any:
            optimizer, scheduler = sgd(self)
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    class Stopwatch(L.Callback):
        def on_train_start(self, trainer: Any, module: Any) -> None:
            clock.start()

        def on_train_end(self, trainer: Any, module: Any) -> None:
            clock.stop()

    clock = Clock(device)
    module = Module()
    with tempfile.TemporaryDirectory() as out:
        trainer = L.Trainer(
            accelerator="cuda" if device == "cuda" else "cpu",
            devices=1,
            max_steps=steps,
            enable_checkpointing=False,
            log_every_n_steps=logging_steps,
            default_root_dir=out,
            callbacks=[Stopwatch()],
        )
        trainer.fit(module, _loader(workload, device))
        return clock.timing(trainer.global_step)


def transformers_trainer(workload: Workload, steps: int, device: str, logging_steps: int) -> Timing:
    from transformers import Trainer, TrainerCallback, TrainingArguments

    class Stopwatch(TrainerCallback):
        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            clock.start()

        def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            clock.stop()

    clock = Clock(device)
    model = workload.model()
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            output_dir=out,
            max_steps=steps,
            per_device_train_batch_size=workload.batch_size,
            max_grad_norm=0.0,
            save_strategy="no",
            eval_strategy="no",
            logging_steps=logging_steps,
            report_to="none",
            disable_tqdm=False,  # its default where logging shows warnings, as ours: the bar is on
            use_cpu=device == "cpu",
        )
        trainer = Trainer(
            model, args, train_dataset=workload.data(), optimizers=sgd(model), callbacks=[Stopwatch()]
        )
        trainer.train()
        return clock.timing(trainer.state.global_step)


Runner = Callable[[Workload, int, str, int], Timing]

#: name -> (the loop, what it is in the table, the module it needs beyond torch)
RUNNERS: dict[str, tuple[Runner, str, str | None]] = {
    "hand": (hand_loop, "hand-written PyTorch loop", None),
    "lifecycle": (lifecycle_trainer, "lifecycle `Trainer.train` (default callbacks)", None),
    "lifecycle-noop10": (lifecycle_noop10, "lifecycle, 10 more no-op `on_step_end` callbacks", None),
    "ignite": (ignite_engine, "Ignite `Engine.run`", "ignite"),
    "lightning": (lightning_fit, "Lightning `Trainer.fit`", "lightning"),
    "transformers": (
        transformers_trainer,
        "transformers `Trainer.train` (default callbacks)",
        "transformers",
    ),
}
