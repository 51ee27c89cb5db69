"""Comet through comet_ml, offline, in a process without a network; the archive's messages are read back."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest

from tests.support.processes import SCRIPTS, child_env
from tests.support.trackers import checkpoint_history, expected_points, tag_of

pytest.importorskip("comet_ml")

RUN = SCRIPTS / "trackers_comet_run.py"


def _can_unshare() -> bool:
    if shutil.which("unshare") is None or os.geteuid() != 0:
        return False
    return subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0


NO_NETWORK = _can_unshare()


pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("tracker_env")]  # each test trains in a process


def run_training(out: Path, *options: str) -> tuple[dict[str, Any], str]:
    """Train in a subprocess (with no network where ``unshare`` allows); its record and its stderr."""
    command = [sys.executable, str(RUN), str(out), *options]
    if NO_NETWORK:
        command = ["unshare", "-n", "sh", "-c", 'ip link set lo up 2>/dev/null; exec "$0" "$@"', *command]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, env=child_env())
    assert done.returncode == 0, done.stderr
    return json.loads((out / "run.json").read_text()), done.stderr


def read_archive(folder: Path) -> list[dict[str, Any]]:
    (archive,) = folder.glob("*.zip")
    return archive_messages(archive)


def archive_messages(archive: Path) -> list[dict[str, Any]]:
    with zipfile.ZipFile(archive) as z:
        return [json.loads(line) for line in z.read("messages.json").decode().splitlines()]


def archive_key(archive: Path) -> str:
    """The key of the experiment an archive belongs to."""
    with zipfile.ZipFile(archive) as z:
        return str(json.loads(z.read("experiment.json"))["offline_id"])


def test_a_resumed_training_and_a_later_evaluation_continue_the_experiment(tmp_path: Path) -> None:
    out = tmp_path / "run"
    record, _ = run_training(out, "resume")
    archives = sorted((out / "comet").glob("*.zip"), key=lambda p: p.stat().st_mtime)
    assert len(archives) == 3  # training, the resumed training, the evaluation after it: none overwritten
    key = archive_key(archives[0])
    assert [archive_key(a) for a in archives] == [key] * 3
    assert all(a.name.startswith(f"{key}-") for a in archives)  # Comet's empty trial archives removed

    def points(archive: Path) -> dict[tuple[str, int], float]:
        metrics = [m["payload"]["metric"] for m in archive_messages(archive) if m["type"] == "metric_msg"]
        return {
            (m["metricName"], m["step"]): m["metricValue"]
            for m in metrics
            if m["metricName"] != "process duration"
        }

    logged_again = record["log_history"][len(checkpoint_history(out / "checkpoint-5")) :]
    assert points(archives[1]) == pytest.approx(expected_points(logged_again))
    assert points(archives[2])[("eval/loss", 10)] == pytest.approx(record["evaluation"]["eval_loss"])


def test_offline_archive_holds_parameters_and_metrics_at_their_steps(tmp_path: Path) -> None:
    out = tmp_path / "run"
    record, _ = run_training(out)
    messages = read_archive(out / "comet")

    others = {m["payload"]["key"]: m["payload"]["value"] for m in messages if m["type"] == "log_other"}
    assert others["Name"] == "comet-check"

    params = {}
    for m in messages:
        if m["type"] == "parameter_msg":
            param = m["payload"].get("param") or m["payload"]["params"]
            params[param["paramName"]] = param["paramValue"]
    for key, value in record["args"].items():
        assert params[key] == value, key

    metrics = [m["payload"]["metric"] for m in messages if m["type"] == "metric_msg"]
    logged = {(m["metricName"], m["step"]): m["metricValue"] for m in metrics}
    expected = expected_points(record["log_history"])
    assert all(logged[k] == pytest.approx(v) for k, v in expected.items())
    epochs = {(m["metricName"], m["step"]): m["epoch"] for m in metrics}
    for entry in record["log_history"]:
        for key in entry.keys() - {"step"}:
            assert epochs[(tag_of(key), entry["step"])] == entry["epoch"], key


@pytest.mark.skipif(not NO_NETWORK, reason="needs `unshare -n` (root) to take the network away")
def test_online_without_a_network_falls_back_to_offline_quickly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COMET_API_KEY", "0123456789abcdef0123456789")
    monkeypatch.setenv("COMET_OFFLINE_DIRECTORY", str(tmp_path / "archives"))
    began = time.monotonic()
    record, stderr = run_training(tmp_path / "run")
    assert time.monotonic() - began < 30  # Comet alone retries for ~35 s before giving up
    assert "Comet is out of reach" in stderr
    steps = {
        m["payload"]["metric"]["step"]
        for m in read_archive(tmp_path / "archives")
        if m["type"] == "metric_msg"
    }
    assert steps >= {entry["step"] for entry in record["log_history"]}
