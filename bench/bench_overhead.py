"""How much the lifecycle costs per training step, against a hand-written PyTorch loop in the same run.

Workload: MLP 64 -> 64 -> 1, batch 32, SGD with a constant LambdaLR schedule, one CPU thread; 21 rounds
of 1000 steps each (3000 steps per round is the classic figure; short rounds interleave better).
The Trainer runs with its default callbacks (flow, progress bar, trackers' default, trace); saving is off
and clipping is off so both loops do the same arithmetic. Rounds alternate (hand, lifecycle, hand, ...)
and the median of the per-round ratios is reported, because these machines are noisy.

Also: the cost of one compiled lifecycle transition, of one `transitions` trigger, and of each added
no-op callback.

    python bench/bench_overhead.py [--steps 1000] [--rounds 21] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from typing import Any

import torch
from runners import hand_loop
from workloads import MLP, WORKLOADS, Regression, sgd

from lifecycle import (
    Lifecycle,
    State,
    Trainer,
    TrainerCallback,
    TrainerControl,
    TrainerState,
    TrainingArguments,
)
from lifecycle.dispatch import Dispatcher


def hand_written(steps: int, device: str = "cpu") -> float:
    """The hand-written loop of ``bench_peers``, on its MLP workload."""
    return hand_loop(WORKLOADS["mlp"], steps, device, logging_steps=0).seconds_per_step


def _synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def with_lifecycle(
    steps: int, data: Regression, callbacks: list[Any] | None = None, device: str = "cpu"
) -> float:
    model = MLP().to(device)
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            output_dir=out,
            max_steps=steps,
            per_device_train_batch_size=32,
            max_grad_norm=0.0,
            save_strategy="no",
            logging_steps=500,
            use_cpu=device == "cpu",
        )
        clock = Stopwatch(device)
        trainer = Trainer(
            model,
            args,
            train_dataset=data,
            optimizers=sgd(model),
            callbacks=[clock, *(callbacks or [])],
        )
        trainer.train()
        return clock.elapsed / steps


class Stopwatch(TrainerCallback):
    """Times the training loop alone: from train_begin to train_end (setup and teardown excluded, as
    the hand-written loop's timing excludes building its model, optimizer and loader)."""

    def __init__(self, device: str):
        self.device, self.start, self.elapsed = device, 0.0, 0.0

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.start = time.perf_counter()

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        _synchronize(self.device)
        self.elapsed = time.perf_counter() - self.start


class Tiny(torch.nn.Module):
    """Linear 2 -> 1: a step that is almost all framework, so what the Trainer adds shows in µs."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.linear = torch.nn.Linear(2, 1)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"loss": torch.nn.functional.mse_loss(self.linear(x), labels)}


def ready_batches(n: int) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    return [{"x": torch.randn(4, 2, generator=g), "labels": torch.randn(4, 1, generator=g)} for _ in range(n)]


class FromList(Trainer):
    """Trains from a list of ready batches: nothing loaded or collated, in either loop."""

    def get_train_dataloader(self) -> Any:
        return self.train_dataset


def tiny_hand(batches: list[dict[str, torch.Tensor]], listed: bool = False) -> float:
    """The near-empty step by hand; ``listed``: gradients zeroed through a list of the parameters made
    once, as the Trainer does, instead of ``model.zero_grad``'s walk of the modules."""
    model = Tiny()
    optimizer, scheduler = sgd(model)
    parameters = list(model.parameters())
    losses = []
    start = time.perf_counter()
    for batch in batches:
        loss = model(**batch)["loss"]
        loss.backward()
        optimizer.step()
        scheduler.step()
        if listed:
            for parameter in parameters:
                parameter.grad = None
        else:
            model.zero_grad(set_to_none=True)
        losses.append(loss.detach())  # as the Trainer keeps them, for its logs
    return (time.perf_counter() - start) / len(batches)


def tiny_lifecycle(
    batches: list[dict[str, torch.Tensor]], progress: bool, callbacks: list[Any] | None = None
) -> float:
    model = Tiny()
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            output_dir=out,
            max_steps=len(batches),
            max_grad_norm=0.0,
            save_strategy="no",
            logging_steps=len(batches) // 2,
            disable_tqdm=not progress,
            use_cpu=True,
        )
        clock = Stopwatch("cpu")
        callbacks = [clock, *(callbacks or [])]
        trainer = FromList(model, args, train_dataset=batches, optimizers=sgd(model), callbacks=callbacks)
        trainer.train()
        return clock.elapsed / len(batches)


class NoOp(TrainerCallback):
    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        pass


class Counter:
    """A runner for the micro-benchmark: one entry action that counts."""

    def __init__(self, n: int):
        self.state, self.control, self.args = TrainerState(), TrainerControl(), None
        self.callback_kwargs: dict[str, Any] = {}
        self.n = n

    def work(self) -> None:
        self.state.global_step += 1


def loop_lifecycle(n: int) -> Lifecycle:
    def more(s: TrainerState, c: TrainerControl) -> bool:
        return s.global_step < n

    return Lifecycle(
        states=[State("idle", rest=True), State("tick", "work")],
        transitions=[("start", "idle", "tick"), ("again", "tick", "tick", more), ("stop", "tick", "idle")],
        initial="idle",
    )


def per_transition(n: int, callbacks: list[Any]) -> float:
    runner = Counter(n)
    dispatcher = Dispatcher(loop_lifecycle(n), runner, callbacks)
    start = time.perf_counter()
    dispatcher.fire("start")
    return (time.perf_counter() - start) / n


class AgainNoOp:
    def on_again(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        pass


def per_transitions_trigger(n: int) -> float:
    from transitions import Machine

    class Model:
        count = 0

        def more(self) -> bool:
            return self.count < n

        def work(self) -> None:
            self.count += 1

    model = Model()
    machine = Machine(model=model, states=["idle", "tick"], initial="idle", auto_transitions=False)
    machine.add_transition("again", "tick", "tick", conditions="more", after="work")
    machine.add_transition("start", "idle", "tick")
    model.start()  # type: ignore[attr-defined]
    start = time.perf_counter()
    while model.more():
        model.again()  # type: ignore[attr-defined]
    return (time.perf_counter() - start) / n


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--device", default="cpu", help="cpu or cuda (both loops run there)")
    opts = parser.parse_args()
    torch.set_num_threads(1)
    data = Regression(4096)
    report = sys.stdout
    sys.stdout = sys.stderr = open(os.devnull, "w")  # the progress bar and logs stay on, drawn nowhere
    device = opts.device

    def say(text: str) -> None:
        print(text, file=report, flush=True)

    hand_written(300, device), with_lifecycle(300, data, device=device)  # warm up
    hand, ours, ratios = [], [], []
    for _ in range(opts.rounds):
        h = hand_written(opts.steps, device)
        o = with_lifecycle(opts.steps, data, device=device)
        hand.append(h), ours.append(o), ratios.append(o / h)
    say(f"training step on {device}, {opts.steps} steps x {opts.rounds} rounds (median):")
    say(f"  hand-written loop       {statistics.median(hand) * 1e6:8.1f} us/step")
    say(f"  lifecycle Trainer       {statistics.median(ours) * 1e6:8.1f} us/step")
    rounds = ", ".join(f"{r:.3f}" for r in ratios)
    say(f"  ratio                   {statistics.median(ratios):8.3f} x   (rounds: {rounds})")
    say(f"  ratio of the fastest    {min(ours) / min(hand):8.3f} x")

    n = 200_000
    dispatch = statistics.median(per_transition(n, []) for _ in range(5))
    ref = statistics.median(per_transitions_trigger(20_000) for _ in range(3))
    say("lifecycle dispatch:")
    say(f"  one compiled transition {dispatch * 1e6:8.3f} us   (guard + callbacks + entry action)")
    say(f"  one transitions trigger {ref * 1e6:8.3f} us")
    for k in (1, 10):
        with_k = statistics.median(per_transition(n, [AgainNoOp() for _ in range(k)]) for _ in range(5))
        say(f"  each no-op callback     {(with_k - dispatch) / k * 1e6:8.3f} us   (measured with {k})")
    in_step = statistics.median(
        with_lifecycle(opts.steps, data, [NoOp() for _ in range(10)], device)
        / with_lifecycle(opts.steps, data, device=device)
        for _ in range(3)
    )
    say(f"  10 no-op on_step_end callbacks in the Trainer: {in_step:.3f} x the default Trainer")

    batches = ready_batches(opts.steps)
    tiny = {"hand": [], "quiet": [], "bar": []}
    for _ in range(opts.rounds):
        tiny["hand"].append(tiny_hand(batches))
        tiny["quiet"].append(tiny_lifecycle(batches, progress=False))
        tiny["bar"].append(tiny_lifecycle(batches, progress=True))
    hand_us, quiet_us, bar_us = (statistics.median(v) * 1e6 for v in tiny.values())
    say(f"what the Trainer adds to a step, in µs (Linear 2 -> 1, ready batches, {opts.rounds} rounds):")
    say(f"  hand-written step       {hand_us:8.1f} us")
    say(f"  added, no progress bar  {quiet_us - hand_us:8.1f} us   (dispatch, callbacks, trace, loss)")
    say(f"  added, progress bar on  {bar_us - hand_us:8.1f} us")


if __name__ == "__main__":
    main()
