"""The lifecycle table is the one hop: every state's entry action and every effect is a documented
Trainer method that says which state (or transition) it serves, and the sketches of the loop in the
trainer's docstring and in docs/lifecycle.md are the table's own."""

from __future__ import annotations

from pathlib import Path

import pytest

from lifecycle import TRAINING_LIFECYCLE
from lifecycle.trainer import Trainer

DOCS = Path(__file__).resolve().parents[1] / "docs" / "lifecycle.md"


@pytest.mark.parametrize("state", [s for s in TRAINING_LIFECYCLE.states if s.action], ids=lambda s: s.name)
def test_each_entry_action_is_a_trainer_method_that_names_its_state(state: object) -> None:
    name, action = state.name, state.action  # type: ignore[attr-defined]
    method = getattr(Trainer, action, None)
    assert callable(method), f"state {name!r}: Trainer has no method {action!r}"
    doc = method.__doc__ or ""
    assert doc.startswith(f"State ``{name}``: "), f"Trainer.{action}'s docstring must start with its state"


@pytest.mark.parametrize(
    "transition", [t for t in TRAINING_LIFECYCLE.transitions if t.effect], ids=lambda t: t.name
)
def test_each_effect_is_a_trainer_method_that_names_its_transition(transition: object) -> None:
    name, effect = transition.name, transition.effect  # type: ignore[attr-defined]
    method = getattr(Trainer, effect, None)
    assert callable(method), f"transition {name!r}: Trainer has no method {effect!r}"
    assert (method.__doc__ or "").startswith(f"Effect of ``{name}``: ")


def test_the_trainer_docstring_shows_the_table_as_it_is() -> None:
    import lifecycle.trainer

    sketch = TRAINING_LIFECYCLE.sketch(indent=4)
    assert sketch in (lifecycle.trainer.__doc__ or ""), (
        "lifecycle/trainer.py's docstring has drifted from the table: paste TRAINING_LIFECYCLE.sketch(4)"
    )


def test_docs_show_the_table_as_it_is() -> None:
    assert TRAINING_LIFECYCLE.sketch() in DOCS.read_text(), (
        "docs/lifecycle.md has drifted from the table: paste TRAINING_LIFECYCLE.sketch()"
    )


def test_the_sketch_lists_every_transition_once() -> None:
    rows = TRAINING_LIFECYCLE.sketch().splitlines()[1:]  # under the heading, one transition a row
    assert len(rows) == len(TRAINING_LIFECYCLE.transitions)
    added = TRAINING_LIFECYCLE.extend(
        states=["swa_update"],
        transitions=[
            ("swa_begin", "advance", "swa_update", lambda s, c: True),
            ("swa_end", "swa_update", "boundary"),
        ],
    ).sketch()
    assert "swa_begin [predicate] -> swa_update" in added and "swa_end -> boundary" in added
