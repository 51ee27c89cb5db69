"""The lifecycle declaration: validation errors that name the offender, and the compiled lifecycle, both
ways it runs (generated code and the reference table), walking exactly the paths of the equivalent
``transitions.Machine``."""

from __future__ import annotations

import hashlib
import random
from typing import Any

import attrs
import pytest

from lifecycle import (
    TRAINING_LIFECYCLE,
    Lifecycle,
    LifecycleError,
    State,
    TrainerControl,
    TrainerState,
)
from lifecycle.dispatch import MODES, Dispatcher

modes = pytest.mark.parametrize("mode", MODES)


def tiny(**changes: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "states": [State("a"), State("b"), State("c", rest=True)],
        "transitions": [("go", "a", "b"), ("stop", "b", "c")],
        "initial": "a",
    }
    spec.update(changes)
    return spec


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"transitions": [("go", "a", "x"), ("stop", "b", "c")]},
            "transition 'go' (a -> x): unknown destination state 'x'",
        ),
        ({"transitions": [("go", "q", "b"), ("stop", "b", "c")]}, "unknown source state 'q'"),
        (
            {"states": [State("a"), State("b"), State("c", rest=True), State("island", rest=True)]},
            "state 'island' is unreachable",
        ),
        ({"transitions": [("go", "a", "b")]}, "state 'b' has no way on"),
        (
            {"transitions": [("go", "a", "b"), ("go", "a", "b"), ("stop", "b", "c")]},
            "duplicate transition 'go' (a -> b)",
        ),
        (
            {"transitions": [("go", "a", "b", "should_fly"), ("stop", "b", "c")]},
            "guard 'should_fly' is not a TrainerControl flag",
        ),
        (
            {"transitions": [("go", "a", "b", 42), ("stop", "b", "c")]},
            "guard 42 is neither a TrainerControl flag name nor a callable",
        ),
        (
            {"transitions": [("go", "a", "b"), ("skip", "a", "c"), ("stop", "b", "c")]},
            "transition 'skip' (a -> c) is never taken",
        ),
        ({"states": [State("a"), State("a"), State("b"), State("c", rest=True)]}, "duplicate state 'a'"),
        ({"initial": "zzz"}, "initial state 'zzz' is not a declared state"),
        ({"transitions": [("go-on", "a", "b"), ("stop", "b", "c")]}, "must be a Python identifier"),
    ],
)
def test_invalid_declarations_name_the_offender(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(LifecycleError) as info:
        Lifecycle(**tiny(**changes))
    assert message in str(info.value)


def test_a_valid_declaration_is_accepted() -> None:
    lc = Lifecycle(**tiny())
    assert lc.state_names == ("a", "b", "c")
    assert [t.name for t in lc.outgoing("a")] == ["go"]


def test_default_lifecycle_declares_every_hf_event() -> None:
    from lifecycle import HF_EVENTS

    assert set(HF_EVENTS) <= set(TRAINING_LIFECYCLE.transition_names)
    assert {"init", "train", "epoch", "step", "evaluate", "save", "end"} <= set(
        TRAINING_LIFECYCLE.state_names
    )


def test_extend_places_new_exits_before_the_existing_ones() -> None:
    def late(s: TrainerState, c: TrainerControl) -> bool:
        return s.global_step >= 3

    lc = TRAINING_LIFECYCLE.extend(
        states=[State("swa_update")],
        transitions=[
            ("optimizer_step", "optimize", "swa_update", late),
            ("swa_end", "swa_update", "advance"),
        ],
    )
    exits = lc.outgoing("optimize")
    assert [(t.name, t.dest) for t in exits] == [
        ("optimizer_step", "swa_update"),
        ("optimizer_step", "advance"),
    ]
    assert lc.outgoing("swa_update")[0].name == "swa_end"
    with pytest.raises(LifecycleError, match="'orphan' is unreachable"):
        TRAINING_LIFECYCLE.extend(states=[State("orphan", rest=True)])


# -- differential test: compiled table vs transitions.Machine ------------------------------------
class Oracle:
    """Deterministic guard answers: a function of (seed, transitions taken so far, which transition)."""

    def __init__(self, seed: int, cap: int):
        self.seed, self.cap, self.taken = seed, cap, 0

    def answer(self, index: int) -> bool:
        if self.taken >= self.cap:  # wind down: every guard fails, unguarded fallbacks lead to rest
            return False
        digest = hashlib.blake2b(f"{self.seed}:{self.taken}:{index}".encode(), digest_size=2).digest()
        return digest[0] % 3 != 0


def with_oracle(lc: Lifecycle, oracle: Oracle) -> Lifecycle:
    def guard_for(index: int) -> Any:
        return lambda s, c: oracle.answer(index)

    return attrs.evolve(
        lc,
        transitions=[
            attrs.evolve(t, guard=guard_for(i) if t.guard is not None else None, effect=None)
            for i, t in enumerate(lc.transitions)
        ],
    )


class WalkRunner:
    """A runner whose entry actions do nothing; a recording callback logs each transition taken."""

    def __init__(self) -> None:
        self.state = TrainerState()
        self.control = TrainerControl()
        self.args = None
        self.callback_kwargs: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:
        return lambda: None


def recorder(names: tuple[str, ...], path: list[str], oracle: Oracle) -> object:
    def make(name: str) -> Any:
        def record(self: Any, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            path.append(name)
            oracle.taken += 1

        return record

    return type("Recorder", (), {f"on_{n}": make(n) for n in names})()


def walk_compiled(lc: Lifecycle, seed: int, triggers: list[str], mode: Any) -> list[str]:
    oracle, path = Oracle(seed, cap=300), []
    olc = with_oracle(lc, oracle)
    dispatcher = Dispatcher(olc, WalkRunner(), [recorder(olc.transition_names, path, oracle)], mode=mode)
    for trigger in triggers:
        dispatcher.fire(trigger)
    return path


def walk_reference(lc: Lifecycle, seed: int, triggers: list[str]) -> list[str]:
    oracle, path = Oracle(seed, cap=300), []

    class Model:
        def on_taken(self, name: str) -> None:
            path.append(name)
            oracle.taken += 1

    index = {id(t): i for i, t in enumerate(lc.transitions)}
    model = Model()
    rest = {s.name for s in lc.states if s.rest}
    lc.to_machine(model, conditions=lambda t: lambda: oracle.answer(index[id(t)]))
    for trigger in triggers:
        assert model.trigger(trigger)  # type: ignore[attr-defined]
        while model.state not in rest:  # type: ignore[attr-defined]
            assert model.advance(), f"transitions found no way on from {model.state!r}"  # type: ignore[attr-defined]
    return path


@modes
@pytest.mark.parametrize("seed", range(40))
def test_compiled_lifecycle_walks_the_same_paths_as_transitions(seed: int, mode: str) -> None:
    triggers = ["init_end", *random.Random(seed).choices(["to_prepare", "to_evaluate", "to_predict"], k=3)]
    compiled = walk_compiled(TRAINING_LIFECYCLE, seed, triggers, mode)
    reference = walk_reference(TRAINING_LIFECYCLE, seed, triggers)
    assert len(compiled) > len(triggers)
    assert compiled == reference


def test_differential_walks_cover_every_transition() -> None:
    seen: set[str] = set()
    for seed in range(40):
        triggers = [
            "init_end",
            *random.Random(seed).choices(["to_prepare", "to_evaluate", "to_predict"], k=3),
        ]
        seen.update(walk_reference(TRAINING_LIFECYCLE, seed, triggers))
    external = {t.name for t in TRAINING_LIFECYCLE.transitions if not t.internal}
    assert seen == external


@modes
def test_a_stuck_state_is_reported_by_name(mode: Any) -> None:
    lc = Lifecycle(
        states=[State("a"), State("b"), State("c", rest=True)],
        transitions=[("go", "a", "b"), ("only_if", "b", "c", "should_log")],
        initial="a",
    )
    runner = WalkRunner()
    with pytest.raises(LifecycleError, match=r"stuck in state 'b'.*only_if.*should_log"):
        Dispatcher(lc, runner, [], mode=mode).fire("go")


@modes
def test_firing_a_transition_the_state_lacks_is_an_error(mode: Any) -> None:
    dispatcher = Dispatcher(TRAINING_LIFECYCLE, WalkRunner(), [], mode=mode)
    with pytest.raises(LifecycleError, match="no transition 'to_prepare' can be taken from state 'init'"):
        dispatcher.fire("to_prepare")


@modes
def test_entry_actions_must_exist_on_the_runner(mode: Any) -> None:
    class Bare:
        state, control, args, callback_kwargs = TrainerState(), TrainerControl(), None, {}

    with pytest.raises(
        LifecycleError, match="state 'prepare': entry action 'begin_training' is not a method of Bare"
    ):
        Dispatcher(TRAINING_LIFECYCLE, Bare(), [], mode=mode)
