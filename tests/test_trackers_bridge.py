"""The one bridge: values as trackers want them, faults contained, Accelerate-style trackers, rank 0 only."""

from __future__ import annotations

import gc
import json
import logging
import multiprocessing
import os
import socket
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from lifecycle.integrations import METRICS_FILE, GeneralTracker, on_main_process, read_jsonl
from tests.support.trackers import Recorder, expected_points, make_trainer

pytestmark = pytest.mark.usefixtures("tracker_env")


def odd_metrics(prediction: Any) -> dict[str, Any]:
    """Metrics of every kind a user may return: a tensor, a numpy number, text, and a list."""
    accuracy = (prediction.predictions.argmax(-1) == prediction.label_ids).mean()
    return {"acc": torch.tensor(accuracy), "f1": np.float32(0.25), "note": "fine", "bad": [1, 2]}


def test_values_are_renamed_converted_and_skipped_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = Recorder()
    trainer = make_trainer(tmp_path / "run", report_to=[recorder, "jsonl"], compute_metrics=odd_metrics)
    with caplog.at_level(logging.WARNING, logger="lifecycle.integrations"):
        trainer.train()

    evals = [(step, row) for step, row in recorder.rows if "eval/loss" in row]
    assert [step for step, _ in evals] == [5, 10]
    for step, row in evals:
        history = next(e for e in trainer.state.log_history if e["step"] == step and "eval_acc" in e)
        assert type(history["eval_acc"]) is float  # the tensor made a number, as transformers does
        assert type(row["eval/acc"]) is float and row["eval/acc"] == history["eval_acc"]
        assert row["eval/f1"] == 0.25 and row["eval/note"] == "fine" and "eval/bad" not in row
    skipped = [r for r in caplog.records if "'eval_bad'" in r.getMessage()]
    assert len(skipped) == 1 and "list" in skipped[0].getMessage()

    lines = read_jsonl(tmp_path / "run" / METRICS_FILE)
    assert [line["step"] for line in lines] == [e["step"] for e in trainer.state.log_history]
    assert lines[2]["eval_note"] == "fine" and "eval_bad" not in lines[2]

    assert recorder.config is not None
    assert recorder.config["learning_rate"] == trainer.args.learning_rate
    assert recorder.config["run_name"] == "run"
    assert recorder.finished == 1


class Broken(GeneralTracker):
    """A tracker whose backend is down."""

    name = "broken"
    requires_logging_directory = False

    def __init__(self, run_name: str | None = None):
        self.calls = 0

    def log(self, values: dict[str, Any], step: int | None = None, **kwargs: Any) -> None:
        self.calls += 1
        raise OSError("disk on fire")

    def finish(self) -> None:
        raise RuntimeError("still on fire")


def test_a_failing_tracker_is_disabled_with_one_warning_and_the_others_get_everything(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = Recorder()
    trainer = make_trainer(tmp_path / "run", report_to=[Broken, recorder, "jsonl"])
    with caplog.at_level(logging.WARNING, logger="lifecycle.integrations"):
        trainer.train()

    history = trainer.state.log_history
    assert recorder.points() == pytest.approx(expected_points(history))
    assert read_jsonl(tmp_path / "run" / METRICS_FILE) == history
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert "'broken'" in warnings[0] and "OSError: disk on fire" in warnings[0]
    (callback,) = [cb for cb in trainer.callbacks if type(cb).__name__ == "TrackerCallback"]
    # disabled at its first failure: no more logs, only a last finish() (which raises again, quietly)
    assert callback.failures == {"broken": 2}
    assert callback.disabled == {"broken": "log() raised OSError: disk on fire"}
    assert trainer.get_tracker("broken").calls == 1
    assert recorder.config is not None  # report_to's class and instance reach trackers by their names
    assert recorder.config["report_to"] == ["broken", "recorder", "jsonl"]


class DocsTracker(GeneralTracker):
    """Written as Accelerate's documentation writes a custom tracker (no finish, no **kwargs)."""

    name = "docs_tracker"
    requires_logging_directory = False

    @on_main_process
    def __init__(self, run_name: str):
        self.run_name = run_name
        self.run: dict[str, Any] = {"config": None, "rows": []}

    @property
    def tracker(self) -> dict[str, Any]:
        return self.run

    @on_main_process
    def store_init_configuration(self, values: dict) -> None:  # type: ignore[type-arg]
        self.run["config"] = values

    @on_main_process
    def log(self, values: dict, step: int | None = None) -> None:  # type: ignore[type-arg,override]
        self.run["rows"].append((step, values))


def test_a_tracker_written_as_in_accelerate_docs_works(tmp_path: Path) -> None:
    trainer = make_trainer(tmp_path / "run", report_to=DocsTracker)
    trainer.train()
    run = trainer.get_tracker("docs_tracker", unwrap=True)
    assert trainer.get_tracker("docs_tracker").run_name == "run"
    assert run["config"]["num_train_epochs"] == 2
    points = {(tag, step): v for step, row in run["rows"] for tag, v in row.items()}
    assert points == pytest.approx(expected_points(trainer.state.log_history))


def test_a_subclass_of_accelerates_own_tracker_works(tmp_path: Path) -> None:
    tracking = pytest.importorskip("accelerate.tracking")

    class AccelerateStyle(tracking.GeneralTracker):  # type: ignore[misc,name-defined]
        name = "accelerate_style"
        requires_logging_directory = True

        def __init__(self, run_name: str, logging_dir: str):
            super().__init__()
            self.folder = Path(logging_dir)
            self.rows: list[Any] = []

        @property
        def tracker(self) -> list[Any]:
            return self.rows

        def log(self, values: dict, step: int | None = None, **kwargs: Any) -> None:  # type: ignore[type-arg]
            self.rows.append((step, values))

    trainer = make_trainer(tmp_path / "run", report_to=[AccelerateStyle])
    trainer.train()
    tracker = trainer.get_tracker("accelerate_style")
    assert tracker.folder == tmp_path / "run"  # Accelerate's (run name, logging folder) convention
    points = {(tag, step): v for step, row in tracker.rows for tag, v in row.items()}
    assert points == pytest.approx(expected_points(trainer.state.log_history))


class EveryRank(Recorder):
    """Reports on every process (``main_process_only = False``) into a file of its own."""

    name = "every_rank"
    main_process_only = False


def _train_and_record(rank: int, folder: str) -> None:
    every = EveryRank()
    trainer = make_trainer(Path(folder) / "run", report_to=["jsonl", every], use_cpu=True)  # gloo
    trainer.train()
    record = {"history": trainer.state.log_history, "every_rank_rows": len(every.rows)}
    (Path(folder) / f"rank{rank}.json").write_text(json.dumps(record))


def _train_as_rank(rank: int, folder: str) -> None:
    torch.distributed.init_process_group(
        "gloo", init_method=f"file://{folder}/rendezvous", rank=rank, world_size=2
    )
    try:
        _train_and_record(rank, folder)
        gc.collect()  # the trainer and its DistributedDataParallel go before the process group they use
        torch.distributed.barrier()
    finally:
        torch.distributed.destroy_process_group()


def _loopback_works() -> bool:
    try:
        with socket.create_server(("127.0.0.1", 0)) as server:
            socket.create_connection(server.getsockname(), timeout=2).close()
        return True
    except OSError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(
    not torch.distributed.is_available() or not _loopback_works(),
    reason="needs torch.distributed and a loopback interface for gloo",
)
def test_only_rank_zero_reports_unless_the_tracker_says_otherwise(tmp_path: Path) -> None:
    spawn = multiprocessing.get_context("spawn")  # forking a process that has run torch can deadlock
    ranks = [spawn.Process(target=_train_as_rank, args=(rank, str(tmp_path))) for rank in (0, 1)]
    for process in ranks:
        process.start()
    for process in ranks:
        process.join(60)
    for process in ranks:
        if process.exitcode is None:
            process.kill()
    assert [p.exitcode for p in ranks] == [0, 0]

    zero, one = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert read_jsonl(tmp_path / "run" / METRICS_FILE) == zero["history"]  # rank 1 wrote nothing there
    # the ranks share the data out, take the same steps and log the same rows
    assert zero["every_rank_rows"] == one["every_rank_rows"] == len(one["history"]) == len(zero["history"])
    assert len(zero["history"]) >= 4


def _train_as_launcher_rank_one(folder: str) -> None:
    os.environ["RANK"] = "1"  # as torchrun sets it, before any process group is up
    _train_and_record(1, folder)


@pytest.mark.slow
def test_a_launcher_rank_other_than_zero_keeps_main_process_trackers_quiet(tmp_path: Path) -> None:
    # a process of its own: the check reads this process's launcher environment and process group
    spawn = multiprocessing.get_context("spawn")
    process = spawn.Process(target=_train_as_launcher_rank_one, args=(str(tmp_path),))
    process.start()
    process.join(60)
    if process.exitcode is None:
        process.kill()
    assert process.exitcode == 0

    assert not (tmp_path / "run" / METRICS_FILE).exists()
    one = json.loads((tmp_path / "rank1.json").read_text())
    assert one["every_rank_rows"] == len(one["history"]) == 8


def test_test_metrics_are_named_test_and_logged_at_the_current_step(tmp_path: Path) -> None:
    recorder = Recorder()
    trainer = make_trainer(tmp_path / "run", report_to=[recorder])
    trainer.train()
    metrics = trainer.evaluate(metric_key_prefix="test")
    step, row = recorder.rows[-1]
    assert step == trainer.state.global_step == 10
    assert row["test/loss"] == metrics["test_loss"] and "train/epoch" in row
    assert recorder.finished == 1  # reopened for the evaluation, not finished again until train_end
