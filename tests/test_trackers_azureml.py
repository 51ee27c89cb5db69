"""Azure ML outside Azure: ``Run.get_context()`` is an offline run that stores nothing and prints what it
is given; what it printed is read back."""

from __future__ import annotations

import ast
import logging
import re
from pathlib import Path

import pytest

from lifecycle import PrinterCallback
from tests.support.trackers import make_trainer, tag_of

pytest.importorskip("azureml.core")

# importing azureml.core takes seconds
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("tracker_env")]

METRIC = re.compile(r"^Attempted to log scalar metric (.+):\n(.*)$", re.MULTILINE)


def test_offline_run_prints_each_metric_in_order_and_the_tags(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.delenv("AZUREML_RUN_ID", raising=False)
    trainer = make_trainer(tmp_path / "run", report_to="azure_ml", compute_metrics=lambda _: {"note": "fine"})
    trainer.remove_callback(PrinterCallback)  # its lines would land between Azure ML's, from another thread
    with caplog.at_level(logging.WARNING, logger="lifecycle.integrations"):
        trainer.train()
    printed = capfd.readouterr().out

    assert "not in an Azure ML job, so metrics are only printed" in caplog.text
    logged = [
        (tag_of(key), str(value)) for entry in trainer.state.log_history for key, value in entry.items()
    ]
    logged = [(tag, value) for tag, value in logged if tag != "train/step"]
    assert METRIC.findall(printed) == logged  # no step: the offline run's ``log`` takes none

    (tags,) = re.findall(r"^Attempted to set tags (\{.*\})$", printed, re.MULTILINE)
    assert ast.literal_eval(tags)["learning_rate"] == str(trainer.args.learning_rate)
    assert set(ast.literal_eval(tags)) >= set(trainer.args.to_dict())
