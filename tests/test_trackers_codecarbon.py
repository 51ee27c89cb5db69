"""CodeCarbon's offline tracker measures training into ``emissions.csv``, read back with the csv module."""

from __future__ import annotations

import csv
import logging
import time
from pathlib import Path
from typing import Any

import pytest

from lifecycle import TrainerCallback
from lifecycle.integrations.codecarbon import DEFAULT_COUNTRY
from tests.support.trackers import make_trainer

pytest.importorskip("codecarbon")

# CodeCarbon takes ~4 s to find the machine's hardware each time it starts
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("tracker_env")]


class StepClock(TrainerCallback):
    """When the first step began and the last one ended."""

    def __init__(self) -> None:
        self.first: float | None = None
        self.last = 0.0

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.first = self.first or time.perf_counter()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.last = time.perf_counter()


def rows(folder: Path) -> list[dict[str, str]]:
    with open(folder / "emissions.csv", newline="") as file:
        return list(csv.DictReader(file))


def test_measures_every_step_in_the_country_set_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CODECARBON_COUNTRY_ISO_CODE", "FRA")
    clock = StepClock()
    out = tmp_path / "run"
    trainer = make_trainer(out, report_to="codecarbon", callbacks=[clock], max_steps=30, num_train_epochs=1)
    trainer.train()

    (row,) = rows(out)
    assert row["project_name"] == "run"
    assert (row["country_iso_code"], row["country_name"]) == ("FRA", "France")
    assert clock.first is not None
    assert float(row["duration"]) >= clock.last - clock.first  # the measurement began before the steps
    assert float(row["energy_consumed"]) > 0 and float(row["emissions"]) > 0
    assert trainer.get_tracker("codecarbon", unwrap=True) is None  # stopped at train_end


def test_without_a_country_it_assumes_the_default_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "run"
    with caplog.at_level(logging.WARNING, logger="lifecycle.integrations"):
        make_trainer(out, report_to="codecarbon", max_steps=2).train()
    assert "set CODECARBON_COUNTRY_ISO_CODE" in caplog.text
    assert [row["country_iso_code"] for row in rows(out)] == [DEFAULT_COUNTRY]
