"""Does a training step of lifecycle's Trainer make the host wait for the GPU?

The Trainer trains a workload on CUDA under ``torch.cuda.set_sync_debug_mode("error")`` from
``train_begin`` on, except while it logs (``to_log`` until ``log``: reading the loss is the one sync a
log needs) and from ``to_finish`` on (the summary reads the loss). Any other synchronizing CUDA call
(``.item()``, ``float(tensor)``, a blocking copy to the host, ``torch.cuda.synchronize()``, ...) raises,
and the check reports the call and the line of ``lifecycle`` that made it.
"""

from __future__ import annotations

import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from workloads import Workload, sgd

import lifecycle
from lifecycle import Trainer, TrainerCallback, TrainingArguments

SKIPPED = "CUDA not available, skipped"


def sync_check(workload: Workload, steps: int, logging_steps: int) -> str:
    """One line (or a few) saying whether any step between logs synchronized, and where."""
    if not torch.cuda.is_available():
        return SKIPPED

    guard = SyncGuard()
    model = workload.model()
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            output_dir=out,
            max_steps=steps,
            per_device_train_batch_size=workload.batch_size,
            max_grad_norm=0.0,
            save_strategy="no",
            logging_steps=logging_steps,
        )
        data = workload.data()
        trainer = Trainer(model, args, train_dataset=data, optimizers=sgd(model), callbacks=[guard])
        try:
            trainer.train()
        except Exception as exc:
            found = _sync_error(exc)
            if found is None:
                raise
            return f"host sync at global_step {trainer.state.global_step}:\n{_where(found)}"
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return (
        f"no host sync in {guard.strict_steps} training steps under set_sync_debug_mode('error') on "
        f"{torch.cuda.get_device_name()} ({guard.logs} logs and the summary were let sync)"
    )


class SyncGuard(TrainerCallback):
    """Strict from ``train_begin`` on; lenient while logging and from ``to_finish`` on. ``set_mode``
    receives ``"error"`` or ``"default"`` (``torch.cuda.set_sync_debug_mode`` unless given)."""

    def __init__(self, set_mode: Callable[[str], None] | None = None) -> None:
        self.set_mode = set_mode or torch.cuda.set_sync_debug_mode
        self.strict = False
        self.strict_steps = 0
        """Steps that reached ``step_end`` in strict mode."""
        self.logs = 0

    def _mode(self, strict: bool) -> None:
        self.strict = strict
        self.set_mode("error" if strict else "default")

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._mode(True)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.strict_steps += self.strict

    def on_to_log(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.logs += 1
        self._mode(False)

    def on_log(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._mode(state.global_step < state.max_steps)

    def on_to_finish(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._mode(False)


def _sync_error(exc: BaseException | None) -> BaseException | None:
    """The exception (``exc`` or one it was raised from) that says a synchronizing CUDA call was made."""
    while exc is not None:
        if "synchroniz" in str(exc) and "CUDA" in str(exc):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def _where(exc: BaseException) -> str:
    """The call that synchronized, and the innermost line of ``lifecycle`` on the way to it."""
    frames = traceback.extract_tb(exc.__traceback__)
    package = str(Path(lifecycle.__file__).parent)
    ours = [f for f in frames if f.filename.startswith(package)]
    lines = [f"  {type(exc).__name__}: {str(exc).splitlines()[0]}"]
    for label, frame in (("in lifecycle", ours[-1] if ours else None), ("the call", frames[-1])):
        if frame is not None:
            lines.append(f"  {label}: {frame.filename}:{frame.lineno} {frame.name}: {frame.line}")
    return "\n".join(lines)
