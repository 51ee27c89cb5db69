"""A tracker of Accelerate's own (``accelerate.tracking.TensorBoardTracker``) in ``report_to``: its run
configuration and metrics, read back from the files it wrote."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.trackers import expected_points, make_trainer

tracking = pytest.importorskip("accelerate.tracking")
yaml = pytest.importorskip("yaml")
event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
plugin_data_pb2 = pytest.importorskip("tensorboard.plugins.hparams.plugin_data_pb2")

pytestmark = pytest.mark.usefixtures("tracker_env")


def _events(folder: Path) -> Any:
    acc = event_accumulator.EventAccumulator(str(folder))
    acc.Reload()
    return acc


def _sessions(folder: Path) -> list[Any]:
    """The hyperparameter sessions written into ``folder``'s event files."""
    acc = _events(folder)
    try:
        content = acc.PluginTagToContent("hparams")
    except KeyError:
        return []
    raw = content.get("_hparams_/session_start_info")
    return [] if raw is None else [plugin_data_pb2.HParamsPluginData.FromString(raw).session_start_info]


def test_accelerate_tensorboard_tracker_gets_a_config_of_plain_values(tmp_path: Path) -> None:
    tracker = tracking.TensorBoardTracker("acc-run", tmp_path / "tb")
    trainer = make_trainer(tmp_path / "run", report_to=[tracker, "jsonl"], label_names=["labels"])
    trainer.train()
    (callback,) = [cb for cb in trainer.callbacks if type(cb).__name__ == "TrackerCallback"]
    assert callback.disabled == {}

    # the configuration: Accelerate writes it once as hparams.yml, once as TensorBoard hyperparameters
    (hparams_file,) = (tmp_path / "tb" / "acc-run").glob("*/hparams.yml")
    config = yaml.safe_load(hparams_file.read_text())
    assert all(value is None or isinstance(value, (bool, int, float, str)) for value in config.values())
    assert config["report_to"] == json.dumps(["tensorboard", "jsonl"])
    assert json.loads(config["label_names"]) == ["labels"]
    for key, value in trainer.args.to_dict().items():
        plain = value if value is None or isinstance(value, (str, int, float)) else json.dumps(value)
        assert config[key] == plain, key
    (session,) = [s for f in (tmp_path / "tb" / "acc-run").iterdir() if f.is_dir() for s in _sessions(f)]
    assert session.hparams["report_to"].string_value == json.dumps(["tensorboard", "jsonl"])
    assert session.hparams["learning_rate"].number_value == pytest.approx(trainer.args.learning_rate)

    # the metrics, at their steps
    acc = _events(tmp_path / "tb" / "acc-run")
    found = {(tag, e.step): e.value for tag in acc.Tags()["scalars"] for e in acc.Scalars(tag)}
    assert found == pytest.approx(expected_points(trainer.state.log_history), rel=1e-6)
