"""Neptune 1.x offline: the operations log ``.neptune/offline/run__*/data-1.log`` read back. Offline runs
cannot be continued (Neptune looks runs up on its server), so a resume writes a new run, complete."""

from __future__ import annotations

import base64
import json
import logging
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.support.resume import Interrupt
from tests.support.side_by_side import train
from tests.support.trackers import expected_points, make_trainer, tag_of

pytest.importorskip("neptune")

# importing neptune takes seconds
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("tracker_env")]


@pytest.fixture(autouse=True)
def _offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Offline, with no token or project, in the test's folder (Neptune writes to ``.``)."""
    monkeypatch.delenv("NEPTUNE_API_TOKEN", raising=False)
    monkeypatch.delenv("NEPTUNE_PROJECT", raising=False)
    monkeypatch.chdir(tmp_path)


def runs(folder: Path) -> list[list[dict[str, Any]]]:
    """The operations of each offline run under ``folder``, oldest first."""
    found = sorted((folder / ".neptune" / "offline").glob("run__*"), key=lambda p: p.stat().st_mtime)
    return [
        [json.loads(line)["obj"] for line in (run / "data-1.log").read_text().splitlines()] for run in found
    ]


def fields(ops: list[dict[str, Any]], base: str = "finetuning") -> dict[str, Any]:
    """``path -> value`` of every assignment, ``(path, step) -> [values]`` of every series point."""
    found: dict[Any, Any] = {}
    for op in ops:
        path = "/".join(op["path"])
        if op["type"].startswith("Assign"):
            found[path] = op["value"]
        elif op["type"].startswith("Log"):
            for point in op["values"]:
                found.setdefault((path.removeprefix(base + "/"), point["step"]), []).append(point["value"])
    return found


def test_parameters_series_and_text_read_back(tmp_path: Path) -> None:
    trainer = make_trainer(tmp_path / "run", report_to="neptune", compute_metrics=lambda _: {"note": "fine"})
    trainer.train()
    assert trainer.get_tracker("neptune").run_identity() is None  # offline: nothing to continue later

    (ops,) = runs(tmp_path)
    found = fields(ops)
    assert found["sys/name"] == "run"
    for key, value in trainer.args.to_dict().items():
        stored = found[f"finetuning/trainer_parameters/{key}"]
        assert stored == (value if isinstance(value, (bool, int, float, str)) else str(value)), key

    expected = expected_points(trainer.state.log_history)
    epochs = {k: v for k, v in expected.items() if k[0] == "train/epoch"}
    assert (
        found["finetuning/train/epoch"] == epochs[max(epochs, key=lambda k: k[1])]
    )  # a value, as HF writes it
    series = {k: v[-1] for k, v in found.items() if isinstance(k, tuple)}
    assert {k: v for k, v in series.items() if k[0] != "eval/note"} == pytest.approx(
        {k: v for k, v in expected.items() if k[0] != "train/epoch"}
    )
    assert series[("eval/note", 5)] == series[("eval/note", 10)] == "fine"


def test_offline_a_resume_writes_a_new_run_holding_the_whole_training_once(tmp_path: Path) -> None:
    out = tmp_path / "run"
    first = make_trainer(
        out, report_to="neptune", save_strategy="steps", save_steps=4, callbacks=[Interrupt(4)]
    )
    with pytest.raises(RuntimeError, match="interrupted after saving step 4"):
        first.train()
    resumed = make_trainer(out, report_to="neptune", save_strategy="steps", save_steps=4)
    resumed.train(resume_from_checkpoint=out / "checkpoint-4")

    before, after = (fields(ops) for ops in runs(tmp_path))
    assert {step for key, step in filter(lambda k: isinstance(k, tuple), before)} == {2, 4}
    points = {k: v for k, v in after.items() if isinstance(k, tuple)}
    expected = Counter(
        (tag_of(key), entry["step"])
        for entry in resumed.state.log_history
        for key in entry
        if key != "step" and tag_of(key) != "train/epoch"
    )
    assert Counter({k: len(v) for k, v in points.items()}) == expected  # every log once, the first ones too
    assert {k: v[-1] for k, v in points.items()} == pytest.approx(
        {k: v for k, v in expected_points(resumed.state.log_history).items() if k[0] != "train/epoch"}
    )


def test_transformers_neptune_callback_cannot_run_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Why this tracker is not compared side by side with transformers' ``NeptuneCallback``: offline,
    the callback fetches ``sys/id``, which an offline run does not have, and training fails."""
    integrations = pytest.importorskip("transformers.integrations")
    from neptune.exceptions import MissingFieldException

    monkeypatch.setenv("NEPTUNE_PROJECT", "workspace/project")
    with pytest.raises(MissingFieldException, match="sys/id"):
        train("transformers", tmp_path / "transformers", integrations.NeptuneCallback())


def test_a_server_out_of_reach_keeps_the_run_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    server = "http://127.0.0.1:9"  # nothing listens there
    token = {"api_address": server, "api_url": server, "api_key": "key"}
    monkeypatch.setenv("NEPTUNE_API_TOKEN", base64.b64encode(json.dumps(token).encode()).decode())
    monkeypatch.setenv("NEPTUNE_PROJECT", "workspace/project")
    monkeypatch.delenv("NEPTUNE_MODE")
    trainer = make_trainer(tmp_path / "run", report_to="neptune")
    with caplog.at_level(logging.WARNING, logger="lifecycle.integrations"):
        trainer.train()
    assert f"{server} did not answer" in caplog.text
    (ops,) = runs(tmp_path)
    assert ("train/loss", 10) in fields(ops)
