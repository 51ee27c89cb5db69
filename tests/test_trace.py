"""The run trace: ``trace.json`` after a real short training run agrees with what a recording callback
saw; ``lifecycle trace`` reads it back (without torch) and draws the run as a heat map."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from lifecycle import TRAINING_LIFECYCLE, CallbackError, State, Trainer, TrainerCallback, TrainingArguments
from lifecycle.callbacks import EarlyStoppingCallback
from lifecycle.cli.trace import trace_command
from lifecycle.graph import LifecycleGraph
from lifecycle.trace import heat_graph, load_trace
from tests.support.helpers import Classifier, Examples
from tests.support.processes import REPO


def swa_due(state: Any, control: Any) -> bool:
    return state.global_step >= 2


SWA = TRAINING_LIFECYCLE.extend(
    states=[State("swa_update")],
    transitions=[("optimizer_step", "optimize", "swa_update", swa_due), ("swa_end", "swa_update", "advance")],
)


def recorder(lifecycle: Any) -> TrainerCallback:
    """A callback with an ``on_<name>`` for every transition of ``lifecycle``, counting what it sees."""

    def hook(name: str) -> Any:
        def on(self: Any, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.seen[name] += 1

        return on

    methods = {f"on_{name}": hook(name) for name in lifecycle.transition_names}
    klass = type("Recorder", (TrainerCallback,), methods)
    cb = klass()
    cb.seen = Counter()
    return cb


class Run(NamedTuple):
    out: Path
    rec: Any
    trainer: Trainer


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    out = tmp_path_factory.mktemp("run")
    rec = recorder(SWA)
    args = TrainingArguments(
        output_dir=str(out),
        num_train_epochs=2,
        per_device_train_batch_size=4,
        logging_steps=2,
        eval_strategy="epoch",
        save_strategy="epoch",
        gradient_accumulation_steps=2,
        disable_tqdm=True,
        metric_for_best_model="loss",
        load_best_model_at_end=True,
    )
    trainer = Trainer(
        Classifier(features=8),
        args,
        train_dataset=Examples(20, features=8),
        eval_dataset=Examples(8, 1, features=8),
        callbacks=[EarlyStoppingCallback(2)],
        lifecycle=SWA,
    )
    trainer.add_callback(rec)  # after init_end: the lifecycle is compiled again, the trace goes on
    trainer.train()
    return Run(out, rec, trainer)


def test_trace_counts_equal_what_a_callback_saw(run: Run) -> None:
    trace = load_trace(run.out)
    fired = {name: v["count"] for name, v in trace["transitions"].items() if v["count"]}
    assert fired == {"init_end": 1, **run.rec.seen}  # the recorder came after init_end
    assert run.rec.seen["swa_end"] > 0 and run.rec.seen["substep_end"] > 0  # a user transition, accumulation
    # each callback's count is its transition's; every edge of a name adds up to the name's count
    for row in trace["callbacks"]:
        assert row["count"] == trace["transitions"][row["transition"]]["count"], row
    for name, v in trace["transitions"].items():
        edges = [e for key, e in trace["edges"].items() if key.split(":")[0] == name]
        assert sum(e["count"] for e in edges) == v["count"], name


def test_edges_tell_apart_the_paths_one_name_takes(run: Run) -> None:
    edges = load_trace(run.out)["edges"]
    steps = run.trainer.state.global_step
    # the first step of each epoch comes from `epoch`, the others from `boundary`
    assert edges["step_begin:epoch->step"]["count"] == 2
    assert edges["step_begin:boundary->step"]["count"] == steps - 2
    assert (
        edges["optimizer_step:optimize->swa_update"]["count"]
        + edges["optimizer_step:optimize->advance"]["count"]
        == steps
    )
    assert edges["optimizer_step:optimize->advance"]["count"] == 2  # swa_due holds from global_step 2
    assert (
        edges["to_evaluate:boundary->evaluate"]["count"] == 2
        and edges["to_evaluate:idle->evaluate"]["count"] == 0
    )


def test_times_are_recorded_for_callbacks_and_entry_actions(run: Run) -> None:
    trace = load_trace(run.out)
    recorded = {r["callback"] for r in trace["callbacks"] if r["time_ns"] > 0}
    assert {f"Recorder.on_{name}" for name in run.rec.seen} <= recorded
    assert "EarlyStoppingCallback.on_evaluate" in recorded
    assert trace["states"]["step"]["time_ns"] > trace["states"]["advance"]["time_ns"] > 0
    assert trace["states"]["step"]["count"] == run.rec.seen["step_begin"] + run.rec.seen["substep_end"]
    for name in run.rec.seen:  # a transition's time: its callbacks' and its effect's
        callbacks = sum(r["time_ns"] for r in trace["callbacks"] if r["transition"] == name)
        assert trace["transitions"][name]["time_ns"] >= callbacks > 0, name
    assert trace["transitions"]["epoch_end"]["time_ns"] > sum(
        r["time_ns"] for r in trace["callbacks"] if r["transition"] == "epoch_end"
    )  # close_epoch, the effect


class Busy(TrainerCallback):
    """Spends ``seconds`` in each ``on_step_end``, on the clock the trace reads."""

    def __init__(self, seconds: float):
        self.seconds = seconds

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        end = time.perf_counter() + self.seconds
        while time.perf_counter() < end:
            pass


class Idle(TrainerCallback):
    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        pass


def test_sampled_times_go_to_the_callback_that_spent_them(tmp_path: Path) -> None:
    """Past the first 64 steps one step in 16 is timed; two callbacks side by side on ``step_end`` (one
    clock read between them) each get their own time, scaled up to all their calls."""
    steps, busy = 400, 200e-6
    args = TrainingArguments(
        output_dir=str(tmp_path), max_steps=steps, per_device_train_batch_size=4, save_strategy="no",
        logging_steps=100, disable_tqdm=True,
    )  # fmt: skip
    callbacks = [Idle(), Busy(busy), Idle()]
    Trainer(Classifier(features=8), args, train_dataset=Examples(64, features=8), callbacks=callbacks).train()
    rows = {r["callback"]: r for r in load_trace(tmp_path)["callbacks"] if r["transition"] == "step_end"}
    assert {rows[name]["count"] for name in ("Idle.on_step_end", "Busy.on_step_end")} == {steps}
    spent = rows["Busy.on_step_end"]["time_ns"] / 1e9
    assert steps * busy <= spent < 3 * steps * busy  # a loaded machine stretches a busy loop
    assert rows["Idle.on_step_end"]["time_ns"] / 1e9 < spent / 10


def test_trace_embeds_the_graph_of_the_run(run: Run) -> None:
    graph = LifecycleGraph.from_dict(load_trace(run.out)["graph"])
    assert graph == run.trainer.lifecycle_graph()
    assert "swa_update" in [s.name for s in graph.states]


def test_tracing_keeps_callback_errors_and_handler_labels(tmp_path: Path) -> None:
    class Boom(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            raise RuntimeError("boom")

    args = TrainingArguments(output_dir=str(tmp_path), max_steps=2, disable_tqdm=True)
    trainer = Trainer(Classifier(features=8), args, train_dataset=Examples(8, features=8), callbacks=[Boom])
    assert "callback Boom.on_step_end" in trainer.dispatcher.handlers("step_end")
    with pytest.raises(
        CallbackError, match=r"callback Boom\.on_step_end raised RuntimeError on transition 'step_end'"
    ):
        trainer.train()


def test_a_failed_run_writes_its_trace_closes_its_trackers_and_can_train_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    class Boom(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if state.global_step == 3:
                raise RuntimeError("boom")

    counting = recorder(TRAINING_LIFECYCLE)
    args = TrainingArguments(
        output_dir=str(tmp_path), max_steps=6, logging_steps=1, disable_tqdm=True, report_to="tensorboard"
    )
    trainer = Trainer(Classifier(), args, train_dataset=Examples(32), callbacks=[counting, Boom])
    with pytest.raises(CallbackError, match="boom"):
        trainer.train()

    trace = load_trace(tmp_path)
    assert trace["failure"].startswith("CallbackError in state 'advance' at global_step 3: callback Boom")
    fired = {name: v["count"] for name, v in trace["transitions"].items() if v["count"]}
    assert fired == dict(counting.seen) and fired["step_end"] == 3
    capsys.readouterr()  # the printer's logs
    assert trace_command(str(tmp_path)) == 0
    assert capsys.readouterr().out.startswith("the run failed: CallbackError in state 'advance'")
    assert trainer.get_tracker("tensorboard", unwrap=True) is None  # finished: its event file is whole

    trainer.remove_callback(Boom)  # the machine is idle again: the trainer takes the next call
    trainer.train()
    assert trainer.state.global_step == 6 and load_trace(tmp_path)["failure"] is None


# -- the command ----------------------------------------------------------------------------------------
def test_trace_command_prints_the_slowest_callbacks_and_draws_a_heat_map(
    run: Run, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert trace_command(str(run.out), top=3, output=str(tmp_path / "heat.svg")) == 0
    text = capsys.readouterr().out
    table = text.split("slowest callbacks (top 3 of ")[1].splitlines()
    slowest = sorted(load_trace(run.out)["callbacks"], key=lambda r: -r["time_ns"])[:3]
    assert [line.split()[0] for line in table[3:6]] == [r["callback"] for r in slowest]
    assert "swa_end" in text.split("slowest callbacks")[0]
    svg = ET.fromstring((tmp_path / "heat.svg").read_bytes())
    assert svg.tag.endswith("svg")
    dot = heat_graph(load_trace(run.out)).to_dot()
    widths = {float(w.split(",")[0]) for w in re.findall(r"penwidth=([0-9.]+)", dot)}
    assert len(widths) > 3  # edge width follows how often an edge was taken
    unused = next(line for line in dot.splitlines() if '"idle" -> "predict"' in line)
    assert "style=dotted" in unused


def test_trace_command_runs_without_torch(run: Run, tmp_path: Path) -> None:
    probe = "import sys; from lifecycle.cli import main; rc = main(sys.argv[1:]); "
    probe += "print('TORCH', 'torch' in sys.modules, rc)"
    done = subprocess.run(
        [sys.executable, "-c", probe, "trace", str(run[0]), "-o", str(tmp_path / "heat.mmd")],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        timeout=60,
    )
    assert done.stdout.rstrip().endswith("TORCH False 0"), done.stdout + done.stderr
    assert "flowchart TD" in (tmp_path / "heat.mmd").read_text()


def test_trace_command_explains_a_missing_or_foreign_trace(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert trace_command(str(tmp_path)) == 1
    assert "no trace.json at" in capsys.readouterr().err
    (tmp_path / "trace.json").write_text(json.dumps({"hello": 1}))
    assert trace_command(str(tmp_path)) == 1
    assert "is not a lifecycle trace" in capsys.readouterr().err
