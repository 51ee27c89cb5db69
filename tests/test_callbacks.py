"""Callbacks on named transitions: HF-style methods, @on with filters, ordering, add/pop/remove,
returned controls, and errors that name the callback and the transition."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lifecycle import (
    CallbackError,
    DefaultFlowCallback,
    Event,
    PrinterCallback,
    Trainer,
    TrainerCallback,
    TrainerControl,
    TrainingArguments,
    on,
)
from lifecycle.checkpoint import list_checkpoints, verify_checkpoint
from tests.support.helpers import Classifier, Examples, Recorder


def make_trainer(tmp_path: Path, callbacks: list[Any], **args: Any) -> Trainer:
    settings: dict[str, Any] = {"num_train_epochs": 2, "per_device_train_batch_size": 4, "disable_tqdm": True}
    settings.update(args)
    return Trainer(
        Classifier(),
        TrainingArguments(output_dir=str(tmp_path), **settings),
        train_dataset=Examples(16),
        eval_dataset=Examples(4, seed=1),
        callbacks=callbacks,
    )


class Filtered(TrainerCallback):
    def __init__(self) -> None:
        self.every: list[int] = []
        self.once: list[int] = []
        self.all: list[tuple[str, int]] = []

    @on("step_end", every=3)
    def every_third(self, event: Event) -> None:
        self.every.append(event.state.global_step)

    @on("step_end", once=2)
    def second(self, event: Event) -> None:
        self.once.append(event.state.global_step)

    @on("epoch_end")
    @on("train_end")
    def ends(self, event: Event) -> None:
        self.all.append((event.transition, event.count))


def test_native_handlers_respect_every_and_once(tmp_path: Path) -> None:
    cb = Filtered()
    make_trainer(tmp_path, [cb]).train()  # 4 steps per epoch, 2 epochs
    assert cb.every == [3, 6]
    assert cb.once == [2]
    assert cb.all == [("epoch_end", 1), ("epoch_end", 2), ("train_end", 1)]


def test_on_rejects_bad_filters() -> None:
    with pytest.raises(ValueError, match="every must be a positive int"):
        on("step_end", every=0)


def test_callbacks_run_in_list_order_with_defaults_around_them(tmp_path: Path) -> None:
    first, second = Recorder(), Filtered()
    trainer = make_trainer(tmp_path, [first, second])
    assert trainer.dispatcher.handlers("step_end") == [
        "callback DefaultFlowCallback.on_step_end",
        "callback Recorder.on_step_end",
        "callback Filtered.every_third",
        "callback Filtered.second",
    ]
    assert isinstance(trainer.callbacks[0], DefaultFlowCallback)
    assert isinstance(trainer.callbacks[-1], PrinterCallback)


def test_add_pop_remove_follow_hugging_face(tmp_path: Path) -> None:
    trainer = make_trainer(tmp_path, [Recorder])
    popped = trainer.pop_callback(Recorder)
    assert isinstance(popped, Recorder)
    assert not any(isinstance(c, Recorder) for c in trainer.callbacks)
    assert trainer.pop_callback(Recorder) is None
    late = Recorder()
    trainer.add_callback(late)
    trainer.remove_callback(PrinterCallback)
    trainer.train()
    assert ("train_begin", 0) in late.events  # added after construction, still bound
    assert popped.events == [("init_end", 0)]  # popped before training: never called again
    assert not any(isinstance(c, PrinterCallback) for c in trainer.callbacks)


def test_custom_transitions_call_on_methods_too(tmp_path: Path) -> None:
    from lifecycle import TRAINING_LIFECYCLE, State

    lifecycle = TRAINING_LIFECYCLE.extend(
        states=[State("ema")],
        transitions=[
            ("optimizer_step", "optimize", "ema", lambda s, c: s.global_step % 2 == 1),
            ("ema_end", "ema", "advance"),
        ],
    )

    class Ema(TrainerCallback):
        def __init__(self) -> None:
            self.steps: list[int] = []

        def on_ema_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.steps.append(state.global_step)

    cb = Ema()
    trainer = Trainer(
        Classifier(),
        TrainingArguments(
            output_dir=str(tmp_path), max_steps=6, disable_tqdm=True, per_device_train_batch_size=4
        ),
        train_dataset=Examples(16),
        callbacks=[cb],
        lifecycle=lifecycle,
    )
    trainer.train()
    assert cb.steps == [1, 3, 5]  # the guard sees global_step before the step is counted


def test_a_flag_set_again_by_its_own_event_does_not_loop(tmp_path: Path) -> None:
    class Insistent(TrainerCallback):
        def __init__(self) -> None:
            self.evaluated: list[int] = []

        def on_evaluate(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.evaluated.append(state.global_step)
            control.should_evaluate = True  # asks again, at the same step
            control.should_log = True

        def on_log(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            control.should_log = True

    cb = Insistent()
    trainer = make_trainer(tmp_path, [cb], eval_strategy="steps", eval_steps=3, max_steps=6)
    trainer.train()
    assert cb.evaluated == [3, 6]  # once per due step: the flag stays up until step_begin clears it
    train_logs = [h["step"] for h in trainer.state.log_history if "loss" in h]
    assert train_logs == sorted(set(train_logs))  # no step logged twice


def test_a_returned_control_replaces_the_flags(tmp_path: Path) -> None:
    class Stop(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> TrainerControl:
            return TrainerControl(should_training_stop=state.global_step >= 3)

    trainer = make_trainer(tmp_path, [Stop()])
    trainer.train()
    assert trainer.state.global_step == 3


def test_returning_something_else_names_the_callback(tmp_path: Path) -> None:
    class Wrong(TrainerCallback):
        def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            return True

    trainer = make_trainer(tmp_path, [Wrong()])
    with pytest.raises(
        CallbackError, match=r"callback Wrong.on_step_begin raised TypeError on transition 'step_begin'"
    ):
        trainer.train()


def test_a_raising_callback_is_named_and_costs_no_checkpoint(tmp_path: Path) -> None:
    class Boom(TrainerCallback):
        @on("step_end", once=5)
        def explode(self, event: Event) -> None:
            raise RuntimeError("disk on fire")

    trainer = make_trainer(tmp_path, [Boom()], save_strategy="steps", save_steps=2)
    with pytest.raises(CallbackError) as info:
        trainer.train()
    message = str(info.value)
    assert (
        "callback Boom.explode raised RuntimeError on transition 'step_end' (advance -> boundary)" in message
    )
    assert "global_step 5" in message and "disk on fire" in message
    assert isinstance(info.value.__cause__, RuntimeError)
    saved = list_checkpoints(tmp_path)
    assert [p.name for p in saved] == ["checkpoint-2", "checkpoint-4"]
    for folder in saved:
        verify_checkpoint(folder)
