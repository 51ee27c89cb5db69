"""TensorBoard through tensorboardX, read back with TensorBoard's own EventAccumulator."""

from __future__ import annotations

import json
import socket
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from lifecycle.integrations import TensorBoardTracker
from tests.support.trackers import close, expected_points, make_trainer, tag_of

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
plugin_data_pb2 = pytest.importorskip("tensorboard.plugins.hparams.plugin_data_pb2")
event_file_loader = pytest.importorskip("tensorboard.backend.event_processing.event_file_loader")
event_pb2 = pytest.importorskip("tensorboard.compat.proto.event_pb2")


pytestmark = pytest.mark.usefixtures("tracker_env")


def read_events(folder: Path) -> Any:
    acc = event_accumulator.EventAccumulator(str(folder), size_guidance={event_accumulator.TENSORS: 0})
    acc.Reload()
    return acc


def restarts(event_file: Path) -> list[int]:
    """The steps at which ``event_file`` tells TensorBoard that a run restarted (hiding later steps)."""
    loader = event_file_loader.EventFileLoader(str(event_file))
    start = event_pb2.SessionLog.START
    return [e.step for e in loader.Load() if e.HasField("session_log") and e.session_log.status == start]


def scalar_series(acc: Any) -> dict[tuple[str, int], list[float]]:
    """``(tag, step) -> values``: a step may hold several (an evaluation after training)."""
    series: dict[tuple[str, int], list[float]] = {}
    for tag in acc.Tags()["scalars"]:
        for event in acc.Scalars(tag):
            series.setdefault((tag, event.step), []).append(event.value)
    return series


def assert_history_in(series: dict[tuple[str, int], list[float]], history: list[dict[str, Any]]) -> None:
    """Every number of ``history`` is in ``series`` at its step, and ``series`` holds no other point."""
    missing = [
        (tag_of(key), entry["step"], value)
        for entry in history
        for key, value in entry.items()
        if key != "step" and not any(close(v, value) for v in series.get((tag_of(key), entry["step"]), []))
    ]
    assert missing == []
    assert series.keys() == expected_points(history).keys()


def test_scalars_text_and_hparams_read_back(tmp_path: Path) -> None:
    out = tmp_path / "run"
    trainer = make_trainer(out, report_to="tensorboard")
    trainer.train()

    runs = list((out / "runs").iterdir())
    assert len(runs) == 1 and runs[0].name.endswith("_" + socket.gethostname())
    acc = read_events(runs[0])

    expected = expected_points(trainer.state.log_history)
    assert ("eval/loss", 5) in expected and ("train/train_loss", 10) in expected
    assert_history_in(scalar_series(acc), trainer.state.log_history)

    (text,) = acc.Tensors("args/text_summary")
    config = json.loads(textwrap.dedent(text.tensor_proto.string_val[0].decode()))
    for key, value in trainer.args.to_dict().items():
        assert config[key] == value, key
    assert config["run_name"] == "run"

    content = acc.PluginTagToContent("hparams")
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    assert {m.name.tag for m in experiment.metric_infos} == {tag for tag, _ in expected}
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    hparams = start.session_start_info.hparams
    assert hparams["learning_rate"].number_value == trainer.args.learning_rate
    assert hparams["lr_scheduler_type"].string_value == "linear"
    assert hparams["fp16"].bool_value is False


def test_logging_dir_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    chosen = tmp_path / "chosen"
    monkeypatch.setenv("TENSORBOARD_LOGGING_DIR", str(tmp_path / "from-env"))
    by_env = make_trainer(tmp_path / "a", report_to="tensorboard").get_tracker("tensorboard")
    assert by_env.logging_dir == str(tmp_path / "from-env")
    by_args = make_trainer(tmp_path / "b", report_to="tensorboard", logging_dir=str(chosen))
    assert by_args.get_tracker("tensorboard").logging_dir == str(chosen)
    by_args.train()
    assert list(chosen.glob("events.out.tfevents.*"))
    assert not (tmp_path / "from-env").exists()
    writer = by_args.get_tracker("tensorboard", unwrap=True)
    assert writer is None  # closed at train_end


def test_resume_replaces_what_the_first_run_logged_past_the_checkpoint(tmp_path: Path) -> None:
    out, logs = tmp_path / "run", tmp_path / "tb"
    settings = {"save_strategy": "steps", "save_steps": 4, "logging_dir": str(logs)}
    first = make_trainer(out, report_to="tensorboard", **settings)
    first.train()
    resumed = make_trainer(out, report_to="tensorboard", **settings)
    resumed.train(resume_from_checkpoint=out / "checkpoint-4")
    resumed.evaluate()  # reopens the writer after train_end
    files = sorted(logs.glob("events.out.tfevents.*"))
    # a new run hides older runs in the folder from step 1 on, the resume from step 5 on; the writer
    # reopened for the evaluation hides nothing
    assert [restarts(f) for f in files] == [[1], [5], []]

    # TensorBoard shows one value per step: the evaluation after training (step 10 again) is not checked
    assert_history_in(scalar_series(read_events(logs)), resumed.state.log_history[:-1])
    steps = [e.step for e in read_events(logs).Scalars("train/loss")]
    assert steps == [2, 4, 6, 8, 10]  # each step once: the first run's 6..10 were purged


def test_a_resumed_training_writes_into_the_dated_folder_it_started(tmp_path: Path) -> None:
    out = tmp_path / "run"
    settings = {"save_strategy": "steps", "save_steps": 4}
    make_trainer(out, report_to="tensorboard", **settings).train()
    (first,) = (out / "runs").iterdir()
    time.sleep(1.1)  # the dated default of a later process names another second
    resumed = make_trainer(out, report_to="tensorboard", **settings)
    resumed.train(resume_from_checkpoint=out / "checkpoint-4")
    assert list((out / "runs").iterdir()) == [first]
    steps = [e.step for e in read_events(first).Scalars("train/loss")]
    assert steps == [2, 4, 6, 8, 10]  # each step once: the first run's 6..10 were purged


def test_event_files_sort_in_opening_order_across_a_second(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # TensorBoard reads a folder's event files in name order, and tensorboardX names them by the second
    # it reads after the tracker chose its suffix: here both suffixes are read around a second's turn
    # (.95 s, then 1.01 s later), and tensorboardX names both files after the later second
    from types import SimpleNamespace

    from tensorboardX import event_file_writer

    from lifecycle.integrations import tensorboard

    suffix_times = iter([1_763_857_531_950_000_000, 1_763_857_532_010_000_000])
    monkeypatch.setattr(tensorboard, "time", SimpleNamespace(time_ns=lambda: next(suffix_times)))
    monkeypatch.setattr(event_file_writer, "time", SimpleNamespace(time=lambda: 1_763_857_532.05))
    for step in (1, 2):
        tracker = TensorBoardTracker("order", tmp_path)
        tracker.log({"loss": float(step)}, step=step)
        tracker.finish()
    files = sorted(tmp_path.glob("events.out.tfevents.1763857532.*"))
    loaders = [event_file_loader.EventFileLoader(str(f)) for f in files]
    assert [[e.step for e in loader.Load() if e.summary.value] for loader in loaders] == [[1], [2]]


def test_tracker_alone_writes_text_for_strings(tmp_path: Path) -> None:
    tracker = TensorBoardTracker("solo", tmp_path)
    tracker.start()
    tracker.store_init_configuration({"lr": 0.1, "layers": [2, 3], "note": None})
    tracker.log({"train/loss": 1.5, "train/phase": "warmup"}, step=3)
    tracker.finish()
    acc = read_events(tmp_path)
    assert [(e.step, e.value) for e in acc.Scalars("train/loss")] == [(3, 1.5)]
    (phase,) = acc.Tensors("train/phase/text_summary")
    assert (phase.step, phase.tensor_proto.string_val[0]) == (3, b"warmup")
    content = acc.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    hparams = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info.hparams
    assert hparams["layers"].string_value == "[2, 3]" and "note" not in hparams
