"""Flyte: training inside a real Flyte task run locally; its ``deck.html`` read back with pandas."""

from __future__ import annotations

import atexit
import io
import json
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from lifecycle.args import ArgumentError
from tests.support.trackers import make_trainer

# flytekit makes its sandbox folders in the temp folder as it is imported and never removes them: they
# go into one folder of this module's instead, removed when the tests end
_SANDBOXES = tempfile.mkdtemp(prefix="lifecycle-flyte-")
atexit.register(shutil.rmtree, _SANDBOXES, ignore_errors=True)
_tempdir, tempfile.tempdir = tempfile.tempdir, _SANDBOXES
try:
    flytekit = pytest.importorskip("flytekit")
finally:
    tempfile.tempdir = _tempdir
pandas = pytest.importorskip("pandas")
pytest.importorskip("flytekitplugins.deck")
pytest.importorskip("lxml")  # pandas.read_html

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("tracker_env")]  # flytekit takes seconds to import


@flytekit.task(enable_deck=True)
def train_in_a_task(out: str) -> str:
    """Train with ``report_to="flyte"``; the log history, as JSON."""
    trainer = make_trainer(
        out,
        report_to="flyte",
        compute_metrics=lambda _: {"note": "fine"},
        save_strategy="steps",
        save_steps=5,
    )
    trainer.train()
    return json.dumps(trainer.state.log_history)


def written_since(name: str, since: float) -> list[Path]:
    """The files called ``name`` that Flyte wrote in its local sandbox since ``since``."""
    from flytekit.core.context_manager import FlyteContextManager

    sandbox = Path(FlyteContextManager.current_context().file_access.local_sandbox_dir)
    return [p for p in sandbox.rglob(name) if p.stat().st_mtime >= since]


def test_the_task_deck_holds_the_log_history_and_the_configuration(tmp_path: Path) -> None:
    began = time.time()
    history = json.loads(train_in_a_task(out=str(tmp_path / "run")))

    (deck,) = written_since("deck.html", began)
    tables = pandas.read_html(io.StringIO(deck.read_text()), flavor="lxml")
    logs = next(t for t in tables if "step" in t.columns)
    expected = pandas.DataFrame(history)
    assert list(logs.columns) == list(expected.columns)
    assert logs["step"].tolist() == expected["step"].tolist()
    numbers = [c for c in expected.columns if c != "eval_note"]
    assert logs[numbers].to_numpy() == pytest.approx(expected[numbers].to_numpy(), rel=1e-3, nan_ok=True)
    assert logs["eval_note"].dropna().tolist() == ["fine", "fine"]

    config = next(t for t in tables if "argument" in t.columns).set_index("argument")["value"]
    assert config["run_name"] == "run" and float(config["learning_rate"]) == 5e-5

    # each checkpoint copied into the task's Flyte checkpoint, the last one over the first
    (copied,) = [
        p
        for p in Path(_SANDBOXES).glob("flyte*/user_space*/__cp/trainer_state.json")
        if p.stat().st_mtime >= began
    ]
    assert json.loads(copied.read_text())["global_step"] == 10
    assert copied.parent != tmp_path / "run" / "checkpoint-10"
    assert (copied.parent / "model.safetensors").read_bytes() == (
        tmp_path / "run" / "checkpoint-10" / "model.safetensors"
    ).read_bytes()


def test_outside_a_task_it_says_so_before_training(tmp_path: Path) -> None:
    with pytest.raises(ArgumentError, match="'flyte' works only inside a Flyte task"):
        make_trainer(tmp_path / "run", report_to="flyte")
