"""What tracing costs per training step: the compiled dispatch of one step, tracing off and on.

The runner's entry actions do no tensor work, so the figure is pure lifecycle overhead: the
transitions of one optimizer step (``step_begin``, ``pre_optimizer_step``, ``optimizer_step``,
``step_end``) with the default callbacks bound, best of interleaved repeats.

    python bench/bench_trace.py
"""

from __future__ import annotations

import tempfile
import time
from typing import Any

from lifecycle.args import TrainingArguments
from lifecycle.callbacks import DefaultFlowCallback, PrinterCallback
from lifecycle.control import TrainerControl
from lifecycle.default import TRAINING_LIFECYCLE
from lifecycle.dispatch import Dispatcher
from lifecycle.state import TrainerState
from lifecycle.trace import Tracer


class _Done(Exception):
    pass


class _Runner:
    """Entry actions that only move the counters the guards read."""

    def __init__(self, steps: int, tmp: str):
        self.state = TrainerState()
        self.control = TrainerControl()
        self.args = TrainingArguments(output_dir=tmp)
        self.callback_kwargs: dict[str, Any] = {}
        self.left = steps
        s, p = self.state, self.state.position
        s.max_steps = s.logging_steps = s.eval_steps = s.save_steps = 10**9
        p.training, p.epoch_open, p.batches_in_epoch = True, True, 10**12

    def forward_backward(self) -> None:
        p = self.state.position
        p.batch_index += 1
        p.window_end = p.batch_index
        self.left -= 1
        if self.left < 0:
            raise _Done

    def advance_schedule(self) -> None:
        self.state.global_step += 1

    def __getattr__(self, name: str) -> Any:  # every other entry action and effect: nothing to do
        if name.startswith("_"):
            raise AttributeError(name)
        return lambda: None


def step_cost_us(tracer: Tracer | None, steps: int, tmp: str, mode: Any = "generated") -> float:
    """Microseconds of dispatch per optimizer step."""
    runner = _Runner(steps, tmp)
    d = Dispatcher(TRAINING_LIFECYCLE, runner, [DefaultFlowCallback(), PrinterCallback()], tracer, mode=mode)
    d.fire("init_end")
    start = time.perf_counter()
    try:
        d.fire("to_prepare")  # into the open epoch; the boundary's next_step guard goes on until _Done
    except _Done:
        pass
    return (time.perf_counter() - start) / steps * 1e6


def measure(
    steps: int = 50_000, repeats: int = 7, tmp: str = "/tmp", mode: Any = "generated"
) -> tuple[float, float]:
    """Best of ``repeats`` (interleaved) per-step costs, tracing off and on."""
    offs, ons = [], []
    for _ in range(repeats):
        offs.append(step_cost_us(None, steps, tmp, mode))
        ons.append(step_cost_us(Tracer(), steps, tmp, mode))
    return min(offs), min(ons)


if __name__ == "__main__":
    for mode in ("generated", "table"):
        off, on = measure(tmp=tempfile.gettempdir(), mode=mode)
        print(
            f"dispatch per optimizer step ({mode}): tracing off {off:.2f} µs, on {on:.2f} µs, "
            f"cost {on - off:.2f} µs"
        )
