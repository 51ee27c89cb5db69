"""The generated lifecycle: readable source that names what it runs, no code for callbacks that override
nothing, tracebacks through the generated lines, and the same behaviour as the reference table where
payloads, ``@on`` filters and errors are concerned; ``lifecycle graph --format python`` prints it."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import traceback
from pathlib import Path
from typing import Any

import pytest

from lifecycle import (
    TRAINING_LIFECYCLE,
    CallbackError,
    Lifecycle,
    State,
    Tracer,
    TrainerCallback,
    TrainerControl,
    TrainerState,
    on,
)
from lifecycle.callbacks import DefaultFlowCallback, ProgressCallback
from lifecycle.cli import main
from lifecycle.dispatch import MODES, Dispatcher, python_source
from tests.support.processes import REPO

DOCS = Path(__file__).resolve().parents[1] / "docs" / "lifecycle.md"
modes = pytest.mark.parametrize("mode", MODES)


def block(source: str, head: str) -> str:
    """The lines of ``source`` from the line ``head`` to the next line indented as little, dedented."""
    lines = source.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == head)
    indent = len(lines[start]) - len(lines[start].lstrip())
    end = next(
        (i for i in range(start + 1, len(lines)) if len(lines[i]) - len(lines[i].lstrip()) <= indent),
        len(lines),
    )
    return textwrap.dedent("\n".join(lines[start:end]))


def test_the_training_cycle_is_straight_line_code_that_names_what_it_runs() -> None:
    source = python_source(TRAINING_LIFECYCLE, [DefaultFlowCallback, ProgressCallback], Tracer())
    step = block(source, 'if at == "step":')
    # step -> optimize -> advance -> boundary: one block, no hop between the states
    order = ["# -- state step: forward_backward()", "# -- state optimize: optimizer_update()"]
    order += ["# -- state advance: advance_schedule()", "DefaultFlowCallback_on_step_end(", 'at = "boundary"']
    places = [step.index(text) for text in order]
    assert places == sorted(places)
    assert step.count("continue") == 2  # the accumulation loop back to step, and the hop to boundary
    # guards inlined (each named in a comment), flag resets inline
    boundary = block(source, 'if at == "boundary":')
    assert "if control.should_log and state.global_step > state.position.logged_step:  # log_due" in boundary
    assert "control.should_log = control.should_evaluate = control.should_save = False" in boundary
    assert "log_due(" not in source
    compile(source, "<test>", "exec")


def test_a_callback_that_overrides_nothing_adds_no_code() -> None:
    class Idle(TrainerCallback):
        pass

    class OneHook(TrainerCallback):
        def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            pass

    plain = python_source(TRAINING_LIFECYCLE, [DefaultFlowCallback])
    assert python_source(TRAINING_LIFECYCLE, [DefaultFlowCallback, Idle, Idle()]) == plain
    with_hook = python_source(TRAINING_LIFECYCLE, [DefaultFlowCallback, OneHook])
    added = set(with_hook.splitlines()) - set(plain.splitlines())
    assert any("OneHook_on_save(args, state, control)" in line for line in added)


def test_names_cannot_break_out_of_the_generated_comments() -> None:
    odd = Lifecycle(
        states=[State("idle", rest=True), State('work\nraise SystemExit("escaped")', "work")],
        transitions=[
            ("go", "idle", 'work\nraise SystemExit("escaped")'),
            ("back", 'work\nraise SystemExit("escaped")', "idle"),
        ],
        initial="idle",
    )
    runner = LoopRunner(1)
    dispatcher = runner.dispatcher = Dispatcher(odd, runner, [])
    dispatcher.fire("go")
    assert dispatcher.counts["back"] == 1 and dispatcher.node.name == "idle"


# -- the generated code against the reference table -----------------------------------------------
LOOP = Lifecycle(
    states=[State("idle", rest=True), State("work", "work"), State("report", "summarize")],
    transitions=[
        ("start", "idle", "work"),
        ("tick", "work", "work", lambda s, c: s.global_step % 4 != 0),
        ("log", "work", "report", "should_log"),
        ("stop", "work", "idle"),
        ("log", "report", "work"),
        ("note", "work", None),
    ],
    initial="idle",
)


class LoopRunner:
    """Counts steps; every fourth asks for a report, whose action returns the logs."""

    def __init__(self, steps: int, fail_at: str | None = None):
        self.state, self.control, self.args = TrainerState(), TrainerControl(), None
        self.callback_kwargs: dict[str, Any] = {"model": "m"}
        self.steps, self.fail_at = steps, fail_at
        self.dispatcher: Dispatcher

    def work(self) -> None:
        if self.fail_at == "work" and self.state.global_step == 5:
            raise ValueError("no work today")
        self.state.global_step += 1
        self.dispatcher.emit("note", text=f"step {self.state.global_step}")
        if self.state.global_step >= self.steps:
            self.control.should_log = False
            self.state.global_step = 4 * (self.state.global_step // 4 + 1)  # tick's guard fails: stop
        else:
            self.control.should_log = self.state.global_step % 4 == 0

    def summarize(self) -> dict[str, Any]:
        return {"logs": {"step": self.state.global_step}}


class Watcher(TrainerCallback):
    def __init__(self) -> None:
        self.seen: list[tuple[Any, ...]] = []

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
        self.seen.append(("on_log", state.global_step, logs, sorted(kwargs)))

    @on("tick", every=3)
    def every_third(self, event: Any) -> None:
        self.seen.append(("tick", event.count, event.state.global_step))

    @on("log", once=2)
    def second_log(self, event: Any) -> None:
        self.seen.append(("second log", event.count, dict(event.payload)))

    @on("note")
    def note(self, event: Any) -> None:
        self.seen.append(("note", event.count, event.payload["text"]))


def walk(mode: Any, steps: int = 11, fail_at: str | None = None, callbacks: Any = None) -> tuple[Any, ...]:
    runner = LoopRunner(steps, fail_at)
    watcher = Watcher()
    dispatcher = runner.dispatcher = Dispatcher(LOOP, runner, [watcher, *(callbacks or [])], mode=mode)
    dispatcher.fire("start")
    return watcher.seen, dict(dispatcher.counts), list(dispatcher.counts.edges)


def test_generated_code_and_table_agree_on_payloads_filters_and_counts() -> None:
    generated, table = walk("generated"), walk("table")
    assert generated == table
    seen, counts, _ = generated
    assert [s[1] for s in seen if s[0] == "tick"] == list(range(3, counts["tick"] + 1, 3))
    # a transition's payload is what its source state's action returned (work returns nothing)
    assert [s[2:] for s in seen if s[0] == "on_log"] == [
        (logs, ["model"]) for logs in (None, {"step": 4}, None, {"step": 8})
    ]
    assert [s for s in seen if s[0] == "second log"] == [("second log", 2, {"logs": {"step": 4}})]
    assert [s[2] for s in seen if s[0] == "note"] == [f"step {n}" for n in range(1, 12)]
    assert counts["log"] == 2 * 2 and counts["note"] == 11


@modes
def test_a_failing_entry_action_keeps_its_type_and_says_where(mode: Any) -> None:
    with pytest.raises(ValueError, match="no work today") as info:
        walk(mode, fail_at="work")
    assert "in lifecycle state 'work' (LoopRunner.work) at global_step 5" in info.value.__notes__


@modes
def test_a_failing_callback_is_named_with_its_transition(mode: Any) -> None:
    class Boom(TrainerCallback):
        def on_log(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            raise KeyError("nope")

    with pytest.raises(CallbackError) as info:
        walk(mode, callbacks=[Boom()])
    assert str(info.value) == (
        "callback Boom.on_log raised KeyError on transition 'log' (work -> report [should_log]) "
        "at global_step 4: 'nope'"
    )
    if mode == "generated":  # the traceback shows the generated line that called it
        text = "".join(traceback.format_exception(info.value.__cause__))
        assert "<lifecycle generated #" in text
        assert "r = Boom_on_log(args, state, control)" in text


@modes
def test_a_callback_returning_something_else_is_named(mode: Any) -> None:
    class Odd(TrainerCallback):
        def on_log(self, args: Any, state: Any, control: Any, **kwargs: Any) -> int:
            return 42

    with pytest.raises(CallbackError) as info:
        walk(mode, callbacks=[Odd()])
    assert str(info.value).startswith(
        "callback Odd.on_log raised TypeError on transition 'log' (work -> report [should_log]) "
        "at global_step 4: returned int"
    )


@modes
def test_a_failing_guard_says_which(mode: Any) -> None:
    def broken(s: Any, c: Any) -> bool:
        return s.no_such_field > 0

    lc = Lifecycle(
        states=[State("idle", rest=True), State("a")],
        transitions=[("go", "idle", "a"), ("back", "a", "idle", broken), ("stay", "a", "idle")],
        initial="idle",
    )
    runner = LoopRunner(1)
    with pytest.raises(AttributeError) as info:
        Dispatcher(lc, runner, [], mode=mode).fire("go")
    assert (
        "in guard broken of transition 'back' (a -> idle [broken]) at global_step 0" in info.value.__notes__
    )


# -- showing it -----------------------------------------------------------------------------------
def test_the_trainer_runs_the_source_the_command_prints(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["graph", "--format", "python", "--callbacks", "lifecycle.callbacks:DefaultFlowCallback"]) == 0
    )
    printed = capsys.readouterr().out
    assert printed == python_source(TRAINING_LIFECYCLE, [DefaultFlowCallback], Tracer())
    runner = LoopRunner(1)
    dispatcher = Dispatcher(TRAINING_LIFECYCLE, _Actions(runner), [DefaultFlowCallback()], Tracer())
    assert dispatcher.source == printed


class _Actions:
    """Any entry action or effect, doing nothing."""

    def __init__(self, runner: LoopRunner):
        self.state, self.control, self.args, self.callback_kwargs = (
            runner.state,
            runner.control,
            runner.args,
            runner.callback_kwargs,
        )

    def __getattr__(self, name: str) -> Any:
        return lambda: None


@pytest.mark.slow
def test_the_command_prints_it_without_torch() -> None:
    probe = "import sys; from lifecycle.cli import main; rc = main(sys.argv[1:]); "
    probe += "print('TORCH', 'torch' in sys.modules, rc)"
    done = subprocess.run(
        [sys.executable, "-c", probe, "graph", "--format", "python"],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        timeout=60,
    )
    assert done.stdout.rstrip().endswith("TORCH False 0"), done.stdout + done.stderr
    assert 'if at == "step":' in done.stdout


def test_the_docs_show_the_generated_step_as_it_is() -> None:
    marker = "<!-- the step block of `lifecycle graph --format python` (tests/test_codegen.py) -->"
    shown = DOCS.read_text().split(f"{marker}\n```py\n")[1].split("```")[0].rstrip("\n")
    source = python_source(TRAINING_LIFECYCLE, [DefaultFlowCallback, ProgressCallback], Tracer())
    assert shown == block(source, 'if at == "step":'), (
        "docs/lifecycle.md has drifted from the generated code: paste the step block of "
        "`lifecycle graph --format python --callbacks lifecycle.callbacks:DefaultFlowCallback "
        "lifecycle.callbacks:ProgressCallback`"
    )


@modes
def test_callbacks_changed_mid_run_take_effect_at_the_next_run(mode: Any) -> None:
    from lifecycle.callbacks.handler import CallbackHandler

    class Late(TrainerCallback):
        def __init__(self) -> None:
            self.ticks = 0

        def on_tick(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.ticks += 1

    late = Late()

    class Adder(TrainerCallback):
        def on_tick(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if state.global_step == 2:
                handler.add_callback(late)

    runner = LoopRunner(7)
    handler = CallbackHandler(LOOP, runner, [Adder()], None, mode)
    runner.dispatcher = handler.dispatcher
    handler.dispatcher.fire("start")
    assert late.ticks == 0 and handler.dispatcher.node.name == "idle"  # the run went on as it began
    ticks = handler.dispatcher.counts["tick"]
    runner.state.global_step, runner.steps = 0, 3
    runner.dispatcher = handler.dispatcher
    handler.dispatcher.fire("start")
    assert late.ticks == handler.dispatcher.counts["tick"] - ticks == 2  # counts carried over


def test_keyword_arguments_go_to_the_methods_that_can_read_them() -> None:
    class Reads(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.model = kwargs["model"]

    class Peeks(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.seen = locals()

    class Names(TrainerCallback):
        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
            self.logs = logs

    source = python_source(TRAINING_LIFECYCLE, [DefaultFlowCallback, Reads, Peeks, Names])
    assert "r = DefaultFlowCallback_on_step_end(args, state, control)\n" in source  # never reads them
    assert "r = Reads_on_step_end(args, state, control, **kwargs)\n" in source
    assert "r = Peeks_on_step_end(args, state, control, **kwargs)\n" in source
    assert 'r = Names_on_log(args, state, control, logs=payload.get("logs"))\n' in source


@modes
def test_a_method_that_reads_its_keyword_arguments_gets_them(mode: Any) -> None:
    class Reads(TrainerCallback):
        def on_log(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.got = dict(kwargs)

    reads = Reads()
    walk(mode, callbacks=[reads])
    assert reads.got == {"model": "m", "logs": {"step": 8}}


THRESHOLD = 3


def _steps_left(s: Any, c: Any) -> bool:
    """Reads a plain global: a snapshot of it could go stale, so it is called, not inlined."""
    return s.global_step < THRESHOLD


def _two_statements(s: Any, c: Any) -> bool:
    p = s.position
    return bool(p.epoch_open)


def _with_helper(s: Any, c: Any, a: Any) -> bool:
    return bool(len([s]) and a is None and _two_statements(s, c))


def test_guards_are_inlined_only_where_that_cannot_change_what_they_say() -> None:
    from lifecycle.dispatch.inline import inline_guard

    bound: dict[str, Any] = {}

    def bind(name: str, value: Any) -> str:
        bound[f"g_{name}"] = value
        return f"g_{name}"

    assert (
        inline_guard(_with_helper, bind)
        == "bool(len([state]) and args is None and g__two_statements(state, control))"
    )
    assert bound == {"g__two_statements": _two_statements}
    for guard in (_steps_left, _two_statements, lambda s, c: True, print):
        assert inline_guard(guard, bind) is None, guard


class FakeClock:
    """``perf_counter_ns`` that moves one tick per read, and as much as a runner says it spent."""

    def __init__(self) -> None:
        self.now = 0

    def __call__(self) -> int:
        self.now += 1
        return self.now


class SpendingRunner(LoopRunner):
    """Each ``work`` spends one million ticks of ``clock``."""

    def __init__(self, steps: int, clock: FakeClock):
        super().__init__(steps)
        self.clock = clock

    def work(self) -> None:
        super().work()
        self.clock.now += 1_000_000


@modes
def test_the_trace_counts_every_call_and_times_a_sample(mode: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from lifecycle.trace import EVERY, EXACT, sampled

    assert [sampled(n) for n in range(300)] == [
        sum(1 for i in range(1, n + 1) if i <= EXACT or i % EVERY == 0) for n in range(300)
    ]
    clock = FakeClock()
    monkeypatch.setattr("time.perf_counter_ns", clock)  # read by the dispatcher as it is built
    tracer = Tracer()
    runner = SpendingRunner(300, clock)
    runner.dispatcher = dispatcher = Dispatcher(LOOP, runner, [Watcher()], tracer, mode=mode)
    dispatcher.fire("start")
    entries = (
        dispatcher.counts["start"] + dispatcher.counts["tick"] + dispatcher.counts.edge("log:report->work")
    )
    work = tracer.slot("", "work", "work", "action")
    tracer.settle()
    assert tracer.calls[work] == entries > EXACT
    if mode == "table":  # each call counted by itself
        assert tracer.timed_calls[work] == sampled(entries)
    else:  # sampled by the count of the transition that led to the call
        counts = dispatcher.counts
        leading = [counts["start"], counts["tick"], counts.edge("log:report->work")]
        assert tracer.timed_calls[work] == sum(sampled(n) for n in leading) < entries
    # the calls actually timed are those counted: each spent a million ticks between two reads
    assert tracer.times[work] // 1_000_000 == tracer.timed_calls[work]
    assert tracer.estimate(work) // 1_000_000 == entries
