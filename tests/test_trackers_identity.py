"""Run identity: a checkpoint names each tracker's run; a resumed training and an evaluation after
training report into that run, a new training into a new one."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from lifecycle.checkpoint import list_checkpoints
from lifecycle.checkpoint.callback_state import restore_callback_states
from lifecycle.checkpoint.folder import CheckpointError
from lifecycle.integrations import TrackerCallback
from tests.support.trackers import Recorder, make_trainer

pytestmark = pytest.mark.usefixtures("tracker_env")


class Named(Recorder):
    """A tracker whose runs have ids: a new one at each start, unless told which run to continue."""

    name = "named"

    def __init__(self, run_name: str | None = None):
        super().__init__(run_name)
        self.calls: list[str] = []
        self.run_id: str | None = None
        self._next: str | None = None

    def continue_run(self, identity: Mapping[str, Any]) -> None:
        self.calls.append("continue_run")
        self._next = identity["id"]

    def rewind(self, step: int) -> None:
        self.calls.append("rewind")

    def start(self) -> None:
        self.calls.append("start")
        self.run_id, self._next = self._next or uuid.uuid4().hex, None

    def run_identity(self) -> dict[str, Any] | None:
        return {"id": self.run_id} if self.run_id is not None else None

    def log(self, values: dict[str, Any], step: int | None = None, **kwargs: Any) -> None:
        super().log({**values, "run": self.run_id}, step)

    def finish(self) -> None:
        super().finish()
        self.calls.append("finish")
        self.run_id = None


def saved_identities(checkpoint: Path) -> dict[str, Any]:
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    (saved,) = state["stateful_callbacks"]["TrackerCallback"]
    return dict(saved)


def test_a_resumed_training_and_a_later_evaluation_continue_the_checkpoints_run(tmp_path: Path) -> None:
    first = Named()
    trainer = make_trainer(tmp_path / "run", report_to=[first], save_strategy="steps", save_steps=5)
    trainer.train()
    (run_id,) = {row["run"] for _, row in first.rows}
    checkpoint = list_checkpoints(tmp_path / "run")[0]
    assert checkpoint.name == "checkpoint-5"
    assert saved_identities(checkpoint) == {"named": {"id": run_id}}

    resumed = Named()
    trainer = make_trainer(tmp_path / "run", report_to=[resumed], save_strategy="steps", save_steps=5)
    trainer.train(resume_from_checkpoint=str(checkpoint))
    assert resumed.calls[:3] == ["continue_run", "rewind", "start"]
    assert {row["run"] for _, row in resumed.rows} == {run_id}
    assert min(step for step, _ in resumed.rows if step is not None) == 5  # the epoch-end evaluation

    trainer.evaluate()  # after train_end finished the run: reopened on the same one
    assert resumed.calls[-3:] == ["finish", "continue_run", "start"]
    assert resumed.rows[-1][1]["run"] == run_id and "eval/loss" in resumed.rows[-1][1]


def test_a_new_training_starts_a_new_run(tmp_path: Path) -> None:
    tracker = Named()
    trainer = make_trainer(tmp_path / "run", report_to=[tracker])
    trainer.train()
    trainer.train()  # not resumed: a run of its own
    first, second = {row["run"] for _, row in tracker.rows[:8]}, {row["run"] for _, row in tracker.rows[8:]}
    assert len(first) == len(second) == 1 and first != second
    assert "continue_run" not in tracker.calls


def test_a_tracker_without_identity_leaves_no_state(tmp_path: Path) -> None:
    trainer = make_trainer(tmp_path / "run", report_to=[Recorder()], save_strategy="steps", save_steps=5)
    trainer.train()
    assert saved_identities(list_checkpoints(tmp_path / "run")[0]) == {}


def test_a_malformed_saved_state_names_the_callback() -> None:
    bridge = TrackerCallback([Named()])
    with pytest.raises(CheckpointError, match=r"callback TrackerCallback: .*tracker name"):
        restore_callback_states([bridge], {"TrackerCallback": [{"named": "not a mapping"}]})
