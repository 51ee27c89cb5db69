"""transformers' own tracker callbacks, unchanged, inside our Trainer.

Each test trains the same tiny configuration twice, with ``transformers.Trainer`` and with
``lifecycle.Trainer``, each with the transformers callback (and ``report_to="none"``), offline into
folders of their own; then reads back what the tracker library wrote for each run and compares: the
same metric names at the same steps, the same values where they are not timings (the two trainers train
identically), and the run configuration: ours holds every argument this library has, transformers'
holds besides only arguments this library does not support.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import pytest

from tests.support.side_by_side import (
    LIBRARIES,
    Points,
    assert_same_config,
    assert_same_points,
    points,
    train,
)

integrations = pytest.importorskip("transformers.integrations")

pytestmark = pytest.mark.usefixtures("tracker_env")


def test_tensorboard_callback(tmp_path: Path) -> None:
    event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    read: dict[str, tuple[Points, dict[str, Any]]] = {}
    for name in LIBRARIES:
        train(name, tmp_path / name, integrations.TensorBoardCallback())
        (folder,) = (tmp_path / name / "runs").iterdir()
        acc = event_accumulator.EventAccumulator(str(folder), size_guidance={event_accumulator.TENSORS: 0})
        acc.Reload()
        scalars = points((tag, e.step, e.value) for tag in acc.Tags()["scalars"] for e in acc.Scalars(tag))
        (text,) = acc.Tensors("args/text_summary")
        read[name] = scalars, json.loads(text.tensor_proto.string_val[0].decode())
    (theirs, their_config), (ours, our_config) = read["transformers"], read["lifecycle"]
    assert_same_points(theirs, ours)
    assert_same_config(their_config, our_config)


def test_mlflow_callback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tracking = pytest.importorskip("mlflow.tracking")
    store = f"file:{tmp_path / 'mlruns'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    # comet_ml, once imported (transformers imports it), follows MLflow runs with offline experiments
    # of its own: they go to the test's folder
    monkeypatch.setenv("COMET_OFFLINE_DIRECTORY", str(tmp_path / "comet"))
    monkeypatch.chdir(tmp_path)
    client = tracking.MlflowClient(store)
    read: dict[str, tuple[Points, dict[str, Any]]] = {}
    for name in LIBRARIES:
        monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", name)
        train(name, tmp_path / name, integrations.MLflowCallback())
        (run,) = client.search_runs([client.get_experiment_by_name(name).experiment_id])
        assert run.info.status == "FINISHED"
        history = [
            (key, m.step, m.value)
            for key in run.data.metrics
            for m in client.get_metric_history(run.info.run_id, key)
        ]
        read[name] = points(history), dict(run.data.params)
    (theirs, their_config), (ours, our_config) = read["transformers"], read["lifecycle"]
    assert_same_points(_renamed(theirs), _renamed(ours))
    assert_same_config(their_config, our_config)


def _renamed(found: Points) -> Points:
    """MLflow's callback logs names as the trainer does (``loss``, ``eval_loss``): as the others name them."""
    from lifecycle.integrations import rewrite_names

    return {(next(iter(rewrite_names({name: 0}))), step): v for (name, step), v in found.items()}


def test_wandb_callback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wandb = pytest.importorskip("wandb")
    from tests.support.wandb_reader import records

    for name in LIBRARIES:
        monkeypatch.setenv("WANDB_DIR", str(tmp_path / name))
        train(name, tmp_path / name, integrations.WandbCallback())
        wandb.finish()  # the callback leaves its run open for the user to finish
        wandb.teardown()  # the run file is complete once the service is down; the next run reads WANDB_DIR
    read: dict[str, tuple[Points, dict[str, Any]]] = {}
    for name in LIBRARIES:
        (run_file,) = (tmp_path / name / "wandb").glob("offline-run-*/run-*.wandb")
        read[name] = _wandb_contents(records(run_file))
    (theirs, their_config), (ours, our_config) = read["transformers"], read["lifecycle"]
    assert_same_points(theirs, ours)
    assert_same_config(their_config, our_config)


def _wandb_contents(found: list[Any]) -> tuple[Points, dict[str, Any]]:
    """History rows at their ``train/global_step`` (the callback's x-axis), and the run's config."""
    config: dict[str, Any] = {}
    rows = []
    for record in found:
        kind = record.WhichOneof("record_type")
        if kind in ("run", "config"):
            updates = record.run.config.update if kind == "run" else record.config.update
            config.update({u.key: json.loads(u.value_json) for u in updates if not u.key.startswith("_")})
        elif kind == "history":
            items = {"/".join(i.nested_key) or i.key: json.loads(i.value_json) for i in record.history.item}
            step = items.pop("train/global_step")
            rows += [(k, step, v) for k, v in items.items() if not k.startswith("_")]
    return points(rows), config


def test_comet_callback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    comet_ml = pytest.importorskip("comet_ml")
    monkeypatch.setenv("COMET_START_ONLINE", "false")
    read: dict[str, tuple[Points, dict[str, Any]]] = {}
    for name in LIBRARIES:
        monkeypatch.setenv("COMET_OFFLINE_DIRECTORY", str(tmp_path / name / "comet"))
        train(name, tmp_path / name, integrations.CometCallback())
        comet_ml.end()  # the callback leaves its experiment open for the user to end
        (archive,) = (tmp_path / name / "comet").glob("*.zip")
        with zipfile.ZipFile(archive) as z:
            messages = [json.loads(line) for line in z.read("messages.json").decode().splitlines()]
        metrics = [m["payload"]["metric"] for m in messages if m["type"] == "metric_msg"]
        params = [  # a list value comes as "params"
            m["payload"].get("param") or m["payload"]["params"]
            for m in messages
            if m["type"] == "parameter_msg"
        ]
        read[name] = (
            points((m["metricName"], m["step"] or 0, m["metricValue"]) for m in metrics),
            {
                p["paramName"].removeprefix("args|"): p["paramValue"]
                for p in params
                if p["paramName"].startswith("args|")
            },
        )
    (theirs, their_config), (ours, our_config) = read["transformers"], read["lifecycle"]
    assert_same_points(theirs, ours)
    assert_same_config(_unflattened(their_config), our_config)


def _unflattened(config: dict[str, Any]) -> dict[str, Any]:
    """Comet flattens nested arguments (``accelerator_config|even_batches``): their top-level names."""
    return {key.split("|")[0]: value for key, value in config.items()}


def test_dvclive_callback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("dvclive")
    yaml = pytest.importorskip("yaml")
    read: dict[str, tuple[Points, dict[str, Any]]] = {}
    for name in LIBRARIES:
        (tmp_path / name).mkdir()
        monkeypatch.chdir(tmp_path / name)  # the callback's Live() writes ./dvclive
        train(name, tmp_path / name, integrations.DVCLiveCallback())
        folder = tmp_path / name / "dvclive"
        rows = []
        for table in (folder / "plots" / "metrics").rglob("*.tsv"):
            metric = table.relative_to(folder / "plots" / "metrics").with_suffix("").as_posix()
            for line in table.read_text().splitlines()[1:]:  # a header, then "step<TAB>value" rows
                step, value = line.split("\t")[:2]
                rows.append((metric, int(step), float(value)))
        read[name] = points(rows), yaml.safe_load((folder / "params.yaml").read_text())
    (theirs, their_config), (ours, our_config) = read["transformers"], read["lifecycle"]
    assert_same_points(theirs, ours)  # DVCLive counts logs as its steps, under both trainers
    assert_same_config(their_config, our_config)


@pytest.mark.slow  # CodeCarbon measures for a few seconds and looks up where it runs
def test_codecarbon_callback(tmp_path: Path) -> None:
    pytest.importorskip("codecarbon")
    columns = {}
    for name in LIBRARIES:
        train(name, tmp_path / name, integrations.CodeCarbonCallback())
        header, *rows = (tmp_path / name / "emissions.csv").read_text().splitlines()
        assert rows  # measured from train_begin to train_end
        columns[name] = header.split(",")
    assert columns["lifecycle"] == columns["transformers"]
