"""AzureMLTracker: metrics into the Azure ML run of the job training runs in (``Run.get_context()``).

Inside an Azure ML job (``$AZUREML_RUN_ID`` set) metrics go to the job's run at their step, strings as
string metrics, and the configuration as the run's tags; the run is the job's, so it is left open.
Outside Azure, azureml-core gives an offline run that stores nothing and only prints what it is given.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
from typing import Any

from lifecycle.integrations.base import GeneralTracker

__all__ = ["AzureMLTracker"]

logger = logging.getLogger("lifecycle.integrations")


class AzureMLTracker(GeneralTracker):
    """The configuration as tags, metrics (numbers and strings) at their step."""

    name = "azure_ml"
    #: what ``report_to="all"`` needs set before it takes this tracker
    needs_setup = "an Azure ML job (AZUREML_RUN_ID)"
    requires_logging_directory = False

    def __init__(self, run_name: str | None = None, *, run: Any = None):
        self.run_name = run_name
        self.run = run
        self._steps: bool | None = None  # whether the run's ``log`` takes ``step=`` (the offline run's not)

    @classmethod
    def configured(cls) -> bool:
        """Whether training runs in an Azure ML job; ``report_to="all"`` needs one."""
        return bool(os.environ.get("AZUREML_RUN_ID"))

    @property
    def tracker(self) -> Any:
        """The ``azureml.core.Run``; None before ``start``."""
        return self.run

    def start(self) -> None:
        if self._steps is not None:
            return
        if self.run is None:
            from azureml.core.run import Run

            if not self.configured():
                logger.warning("azure_ml: not in an Azure ML job, so metrics are only printed")
            self.run = Run.get_context()
        self._steps = "step" in inspect.signature(self.run.log).parameters

    def store_init_configuration(self, values: dict[str, Any]) -> None:
        self.start()
        self.run.set_tags(
            {key: value if isinstance(value, str) else json.dumps(value) for key, value in values.items()}
        )

    def log(self, values: dict[str, Any], step: int | None = None, **kwargs: Any) -> None:
        self.start()
        at = {"step": step} if self._steps and step is not None else {}
        for key, value in values.items():
            self.run.log(key, value, description=key, **at)

    def finish(self) -> None:
        """Send what is buffered; the run itself belongs to the job."""
        if self._steps is not None:
            self.run.flush()
            self._steps = None
