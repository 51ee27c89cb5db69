"""MLflowTracker: one MLflow run, through ``MlflowClient`` (no global active run is touched).

Where it writes is MLflow's own choice: ``$MLFLOW_TRACKING_URI`` (a server, ``sqlite:///...``, or
``file:...`` with ``MLFLOW_ALLOW_FILE_STORE=true``), else MLflow's default. The experiment is
``$MLFLOW_EXPERIMENT_NAME`` (created if missing) or ``Default``; ``$MLFLOW_RUN_ID`` continues a run.

A resumed training continues the checkpoint's run. MLflow keeps every point logged, two at one step
included, and cannot delete any: the points a stopped process logged after its checkpoint stay, and
the resumed training does not log those (metric, step) points again, so each step is in the history
once (the resumed training reproduces the same values; timings are the first process's).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from lifecycle.integrations.base import GeneralTracker
from lifecycle.integrations.held import HeldPoints

__all__ = ["MLflowTracker"]

_BATCH = 100  # MLflow's limit of parameters per call
_VALUE_LENGTH = 6000  # MLflow's limit on a parameter's value


class MLflowTracker(GeneralTracker):
    """Parameters from the configuration, metrics at their step, strings as text artifacts."""

    name = "mlflow"
    requires_logging_directory = False
    #: what ``report_to="all"`` needs set before it takes this tracker
    needs_setup = "MLFLOW_TRACKING_URI"

    def __init__(
        self, run_name: str | None = None, *, tracking_uri: str | None = None, experiment: str | None = None
    ):
        self.run_name = run_name
        self.tracking_uri = tracking_uri
        self.experiment = experiment or os.environ.get("MLFLOW_EXPERIMENT_NAME") or "Default"
        self.client: Any = None
        self.run: Any = None
        self._continue: str | None = None
        self._rewind: tuple[int, Sequence[Mapping[str, Any]] | None] | None = None
        #: (metric, step) points the run already holds from after the checkpoint: not logged again
        self._held: HeldPoints | None = None
        """A continued run's points from past its checkpoint, skipped when logged again."""

    @classmethod
    def configured(cls) -> bool:
        """Whether ``$MLFLOW_TRACKING_URI`` says where to write; ``report_to="all"`` needs it."""
        return bool(os.environ.get("MLFLOW_TRACKING_URI"))

    @property
    def tracker(self) -> Any:
        """The ``mlflow.entities.Run`` (its ``info.run_id`` names it); None before ``start``."""
        return self.run

    @property
    def run_id(self) -> str:
        return str(self.run.info.run_id)

    def run_identity(self) -> dict[str, Any] | None:
        """``{"run_id": ...}``."""
        return {"run_id": self.run_id} if self.run is not None else None

    def continue_run(self, identity: Mapping[str, Any]) -> None:
        """The next ``start`` reopens the run ``identity["run_id"]``."""
        self._continue = str(identity["run_id"])

    def rewind(self, step: int, history: Sequence[Mapping[str, Any]] | None = None) -> None:
        """Training (re)starts at ``step``: the points of a continued run past it are not logged again."""
        self._rewind = (step, history)

    def start(self) -> None:
        if self.run is not None:
            return
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(self.tracking_uri)
        existing, self._continue = self._continue or os.environ.get("MLFLOW_RUN_ID"), None
        rewind, self._rewind = self._rewind, None
        if existing:
            self.run = self.client.get_run(existing)
            if rewind is not None and rewind[0] > 0:
                self._held = HeldPoints(self._points(), *rewind)
            return
        found = self.client.get_experiment_by_name(self.experiment)
        experiment_id = (
            found.experiment_id if found is not None else self.client.create_experiment(self.experiment)
        )
        self.run = self.client.create_run(experiment_id, run_name=self.run_name)

    def _points(self) -> Iterator[tuple[str, int]]:
        """Every ``(metric, step)`` point the run holds, one per logged value."""
        for key in self.run.data.metrics:
            yield from ((key, m.step) for m in self.client.get_metric_history(self.run_id, key))

    def store_init_configuration(self, values: dict[str, Any]) -> None:
        from mlflow.entities import Param

        self.start()
        params = [Param(key, str(value)[:_VALUE_LENGTH]) for key, value in values.items()]
        for first in range(0, len(params), _BATCH):
            self.client.log_batch(self.run_id, params=params[first : first + _BATCH])

    def log(self, values: dict[str, Any], step: int | None = None, **kwargs: Any) -> None:
        from mlflow.entities import Metric

        self.start()
        now = int(time.time() * 1000)
        metrics = [Metric(k, float(v), now, step or 0) for k, v in values.items() if not isinstance(v, str)]
        held = self._held
        if held:
            metrics = [m for m in metrics if not held.take(m.key, m.step)]
        if metrics:
            self.client.log_batch(self.run_id, metrics=metrics)
        for key, text in values.items():
            if isinstance(text, str):
                self.client.log_text(self.run_id, text, f"text/{key}/step_{step or 0}.txt")

    def finish(self) -> None:
        if self.run is not None:
            self.client.set_terminated(self.run_id)
            self.run = None
