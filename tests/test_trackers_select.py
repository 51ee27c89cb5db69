"""``report_to``: names, aliases, ``"all"``, ``"none"``, classes, instances; clear errors; ``get_tracker``."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from lifecycle import ArgumentError, TrainingArguments
from lifecycle.integrations import (
    KNOWN_TRACKERS,
    CometTracker,
    JSONLTracker,
    TensorBoardTracker,
    TrackerCallback,
    WandBTracker,
    find_tracker,
    registry,
    tracker_callbacks,
)
from lifecycle.integrations.registry import KnownTracker, installed
from tests.support.processes import REPO
from tests.support.trackers import Recorder, make_trainer

pytestmark = pytest.mark.usefixtures("tracker_env")


def names(report_to: object, tmp_path: Path) -> list[str]:
    args = TrainingArguments(output_dir=str(tmp_path / "run"), report_to=report_to)
    return [t.name for cb in tracker_callbacks(args) for t in cb.trackers]


def test_default_none_name_list_and_aliases(tmp_path: Path) -> None:
    assert names(None, tmp_path) == ["jsonl"]
    assert names("none", tmp_path) == []
    assert names([], tmp_path) == []
    assert names("tensorboard", tmp_path) == ["tensorboard"]
    assert names(["comet", "TensorBoardX", "jsonl"], tmp_path) == ["comet_ml", "tensorboard", "jsonl"]
    assert names(["tensorboard", "tb"], tmp_path) == ["tensorboard"]  # one tracker per name


def test_all_takes_every_installed_tracker_that_is_set_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    builtin = {k.name for k in KNOWN_TRACKERS if k.adapter is not None and installed(k.module)}
    # no key, offline mode nor tracking URI asked; no ClearML setup; not in an Azure ML job nor a Flyte task
    not_set_up = {"comet_ml", "mlflow", "swanlab", "clearml", "azure_ml", "dagshub", "flyte"}
    monkeypatch.delenv("WANDB_MODE")
    if not WandBTracker.configured():  # no W&B key on this machine
        not_set_up.add("wandb")
    with caplog.at_level(logging.INFO, logger="lifecycle.integrations"):
        chosen = names("all", tmp_path)
    assert set(chosen) == builtin - not_set_up
    (line,) = [r.getMessage() for r in caplog.records if "report_to" in r.getMessage()]
    assert line.startswith(f'report_to="all" chose: {", ".join(chosen)}; left out: ')
    for known in KNOWN_TRACKERS:
        if known.name not in chosen:
            assert f"{known.name} (" in line, known.name
    assert "mlflow (not set up: MLFLOW_TRACKING_URI)" in line
    if MISSING:
        assert f"(not installed: torch-lifecycle[{MISSING[0].extra}])" in line

    monkeypatch.setenv("COMET_MODE", "offline")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "https://dagshub.com/owner/repo.mlflow")  # MLflow, DagsHub
    monkeypatch.setenv("SWANLAB_MODE", "offline")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("CLEARML_OFFLINE_MODE", "1")
    monkeypatch.setenv("AZUREML_RUN_ID", "run-1")
    assert set(names("all", tmp_path)) == builtin - {"flyte"}  # a Flyte task is not to be had here
    assert set(names(["all", Recorder], tmp_path)) == builtin - {"flyte"} | {"recorder"}


def test_accelerate_logger_type_names_work(tmp_path: Path) -> None:
    tracking = pytest.importorskip("accelerate.utils")
    assert names([tracking.LoggerType.TENSORBOARD, tracking.LoggerType.COMETML], tmp_path) == [
        "tensorboard",
        "comet_ml",
    ]


def test_unknown_name_lists_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(ArgumentError, match="unknown tracker 'tensorbored'") as caught:
        make_trainer(tmp_path / "run", report_to=["jsonl", "tensorbored"])
    for known in KNOWN_TRACKERS:
        assert known.name in str(caught.value)


MISSING = [k for k in KNOWN_TRACKERS if not installed(k.module)]


@pytest.mark.skipif(not MISSING, reason="every known tracker is installed here")
def test_known_but_missing_tracker_names_its_extra(tmp_path: Path) -> None:
    with pytest.raises(ArgumentError, match=rf"pip install 'torch-lifecycle\[{MISSING[0].extra}\]'"):
        make_trainer(tmp_path / "run", report_to=MISSING[0].name)


def test_known_installed_tracker_without_adapter_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bare = KnownTracker("pytestboard", "pytest", "pytestboard")  # installed (pytest runs), no adapter
    monkeypatch.setitem(registry._BY_NAME, bare.name, bare)
    with pytest.raises(ArgumentError, match="'pytestboard' is a known tracker without a built-in adapter"):
        make_trainer(tmp_path / "run", report_to=bare.name)


def test_something_that_is_not_a_tracker_is_refused(tmp_path: Path) -> None:
    with pytest.raises(
        ArgumentError, match="is not a tracker: it lacks name, requires_logging_directory, log"
    ):
        make_trainer(tmp_path / "run", report_to=[42])


def test_get_tracker_by_name_alias_and_unwrapped(tmp_path: Path) -> None:
    recorder = Recorder()
    trainer = make_trainer(tmp_path / "run", report_to=["jsonl", "comet", recorder, TensorBoardTracker])
    assert isinstance(trainer.get_tracker("comet"), CometTracker)
    assert trainer.get_tracker("comet_ml") is trainer.get_tracker("comet")
    assert isinstance(trainer.get_tracker("tensorboard"), TensorBoardTracker)
    assert trainer.get_tracker("recorder") is recorder
    assert trainer.get_tracker("recorder", unwrap=True) is recorder.rows
    assert isinstance(find_tracker(trainer.callbacks, "jsonl"), JSONLTracker)
    assert sum(isinstance(cb, TrackerCallback) for cb in trainer.callbacks) == 1
    with pytest.raises(KeyError, match="reports to: jsonl, comet_ml, recorder, tensorboard"):
        trainer.get_tracker("wandb")


def test_importing_lifecycle_imports_no_tracker_library() -> None:
    code = (
        "import sys, lifecycle, lifecycle.integrations; "
        "print(sorted(m for m in ('comet_ml', 'tensorboardX', 'tensorboard', 'torch') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(REPO)},
        check=True,
    )
    assert done.stdout.strip() == "[]"
