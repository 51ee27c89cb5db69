"""TRAINING_LIFECYCLE: the default training loop, declared as a table.

Read it top to bottom as the loop it is. Each state's entry action is a :class:`~lifecycle.Trainer`
method; each transition name is the event callbacks attach to (Hugging Face's ``on_<name>``). After a
step and after an epoch the machine rests in ``boundary``, which visits ``log``, ``evaluate`` and
``save`` in that order, each only while its flag is set (each flag is cleared by its own event), and
then moves on to the next step, the end of the epoch, the next epoch, or the finish.
"""

from __future__ import annotations

from lifecycle.args import TrainingArguments
from lifecycle.control import TrainerControl
from lifecycle.machine import Lifecycle, State, Transition
from lifecycle.state import TrainerState

__all__ = ["TRAINING_LIFECYCLE"]


# -- guards: questions about where training stands --------------------------------------------
def eval_on_start(s: TrainerState, c: TrainerControl, a: TrainingArguments) -> bool:
    """Asked for, and nothing trained yet: a resumed run evaluated on its start long ago."""
    return a.eval_on_start and s.global_step == 0


def window_open(s: TrainerState, c: TrainerControl) -> bool:
    """More micro-batches belong to this gradient-accumulation window."""
    return s.position.batch_index < s.position.window_end


def log_due(s: TrainerState, c: TrainerControl) -> bool:
    """``should_log``, and some step was taken since the last training log."""
    return c.should_log and s.global_step > s.position.logged_step


def next_step(s: TrainerState, c: TrainerControl) -> bool:
    """The epoch has another batch, and no flag stops it."""
    return (
        s.position.epoch_open
        and s.position.batch_index < s.position.batches_in_epoch
        and not (c.should_epoch_stop or c.should_training_stop)
    )


def evaluation_due(s: TrainerState, c: TrainerControl) -> bool:
    """``should_evaluate``, and no evaluation at this step yet (step 0 counts: evaluation on start)."""
    return c.should_evaluate and s.global_step > s.position.evaluated_step


def save_due(s: TrainerState, c: TrainerControl) -> bool:
    """``should_save``, and no checkpoint was written at this step yet."""
    return c.should_save and s.global_step > s.position.saved_step


def epoch_open(s: TrainerState, c: TrainerControl) -> bool:
    return s.position.epoch_open


def next_epoch(s: TrainerState, c: TrainerControl) -> bool:
    return s.position.epoch_index < s.num_train_epochs and not c.should_training_stop


def epoch_due(s: TrainerState, c: TrainerControl) -> bool:
    """An epoch to resume, or a next one to start."""
    return s.position.epoch_open or next_epoch(s, c)


def more_to_evaluate(s: TrainerState, c: TrainerControl) -> bool:
    """Another evaluation dataset is next (``eval_dataset`` given as a dict)."""
    return s.position.evaluations_left > 0


def training(s: TrainerState, c: TrainerControl) -> bool:
    return s.position.training


S, T = State, Transition

# fmt: off
TRAINING_LIFECYCLE = Lifecycle(
    name="training",
    initial="init",
    states=[
        # state       entry action (Trainer)  rest   what happens on entry
        S("init",     None,                   False, "the trainer is being built"),
        S("idle",     None,                   True,  "waiting for train(), evaluate() or predict()"),
        S("prepare",  "begin_training",       False, "data, optimizer, schedule ready; checkpoint loaded"),
        S("train",    None,                   False, "training has begun"),
        S("epoch",    "begin_epoch",          False, "a pass over the data starts (or resumes)"),
        S("step",     "forward_backward",     False, "one micro-batch: forward, backward, clip"),
        S("optimize", "optimizer_update",     False, "optimizer.step()"),
        S("advance",  "advance_schedule",     False, "scheduler step, zero grads, global_step += 1"),
        S("boundary", "agree_on_stop",        False, "after a step or an epoch: decide what comes next"),
        S("log",      "collect_train_logs",   False, "mean loss, grad norm, learning rate"),
        S("evaluate", "run_evaluation",       False, "the evaluation loop and its metrics"),
        S("judge",    "judge_evaluation",     False, "best metric tracked; strategy 'best' flags a save"),
        S("save",     "save_checkpoint",      False, "a checkpoint is written"),
        S("finish",   "summarize_training",   False, "training summary metrics"),
        S("end",      "end_training",         False, "the best model loaded when asked"),
        S("predict",  "run_prediction",       False, "the prediction loop"),
    ],
    transitions=[
        # transition            source      dest        guard              effect
        T("init_end",           "init",     "idle"),
        T("to_prepare",         "idle",     "prepare"),
        T("to_evaluate",        "idle",     "evaluate"),
        T("to_predict",         "idle",     "predict"),
        T("train_begin",        "prepare",  "train"),
        T("to_evaluate",        "train",    "evaluate", eval_on_start),
        T("epoch_begin",        "train",    "epoch",    epoch_due),
        T("to_finish",          "train",    "finish"),
        T("step_begin",         "epoch",    "step",     next_step),
        T("epoch_end",          "epoch",    "boundary", None,              "close_epoch"),
        T("substep_end",        "step",     "step",     window_open),
        T("pre_optimizer_step", "step",     "optimize"),
        T("optimizer_step",     "optimize", "advance"),
        T("step_end",           "advance",  "boundary"),
        T("to_log",             "boundary", "log",      log_due),
        T("to_evaluate",        "boundary", "evaluate", evaluation_due),
        T("to_save",            "boundary", "save",     save_due),
        T("step_begin",         "boundary", "step",     next_step),
        T("epoch_end",          "boundary", "boundary", epoch_open,        "close_epoch"),
        T("epoch_begin",        "boundary", "epoch",    next_epoch),
        T("to_finish",          "boundary", "finish"),
        T("log",                "log",      "boundary"),
        T("prediction_step",    "evaluate", None),
        T("log",                "evaluate", None),
        T("evaluate",           "evaluate", "evaluate", more_to_evaluate),
        T("evaluate",           "evaluate", "judge",    training),
        T("evaluate",           "evaluate", "idle"),
        T("to_boundary",        "judge",    "boundary"),
        T("save",               "save",     "boundary"),
        T("log",                "finish",   "end"),
        T("train_end",          "end",      "idle"),
        T("prediction_step",    "predict",  None),
        T("predict",            "predict",  "idle"),
    ],
)
# fmt: on
