"""PrinterCallback and ProgressCallback: show training as it goes (main process only)."""

from __future__ import annotations

from typing import Any

from tqdm.auto import tqdm

from lifecycle.args import TrainingArguments
from lifecycle.callbacks.base import TrainerCallback
from lifecycle.control import TrainerControl
from lifecycle.state import TrainerState

__all__ = ["PrinterCallback", "ProgressCallback"]


def _readable(logs: dict[str, Any]) -> dict[str, Any]:
    return {k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in logs.items() if k != "total_flos"}


class PrinterCallback(TrainerCallback):
    """Prints each log."""

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if state.is_local_process_zero and logs is not None:
            print(_readable(logs))


class ProgressCallback(TrainerCallback):
    """A tqdm bar for training steps and one for each evaluation; logs are written above the bar."""

    def __init__(self) -> None:
        self.training_bar: Any = None
        self.prediction_bar: Any = None
        self.current_step = 0

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if state.is_world_process_zero:
            self.training_bar = tqdm(total=state.max_steps, initial=state.global_step, dynamic_ncols=True)
        self.current_step = state.global_step

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if self.training_bar is not None:
            self.training_bar.update(state.global_step - self.current_step)
        self.current_step = state.global_step

    def on_prediction_step(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        eval_dataloader: Any = None,
        **kwargs: Any,
    ) -> None:
        if not state.is_world_process_zero or eval_dataloader is None:
            return
        if self.prediction_bar is None:
            try:
                total = len(eval_dataloader)
            except TypeError:  # iterable data: the bar counts without a total
                total = None
            self.prediction_bar = tqdm(total=total, leave=self.training_bar is None, dynamic_ncols=True)
        self.prediction_bar.update(1)

    def _close_prediction_bar(self) -> None:
        if self.prediction_bar is not None:
            self.prediction_bar.close()
        self.prediction_bar = None

    def on_evaluate(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self._close_prediction_bar()

    def on_predict(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self._close_prediction_bar()

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if self.training_bar is not None and logs is not None:
            self.training_bar.write(str(_readable(logs)))

    def on_train_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if self.training_bar is not None:
            self.training_bar.close()
        self.training_bar = None
