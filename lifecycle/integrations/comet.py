"""CometTracker: a Comet experiment, online when an API key is set up and Comet answers, else offline.

Offline (``COMET_MODE=offline``, no API key, or the server out of reach) the experiment is written as
a zip under ``$COMET_OFFLINE_DIRECTORY`` (default ``<output_dir>/comet``); ``comet upload <zip>``
sends it later. Nothing here waits on the network for more than a few seconds.

A resumed training, and an evaluation after training, continue the checkpoint's experiment (its key,
``mode="get_or_create"``). Offline, each process writes an archive of its own, ``<key>-<suffix>.zip``
(the suffix from the clock, not from ``random``, which training seeds: two processes would draw one
name and the second archive would overwrite the first); ``comet upload`` appends each to the one
experiment. An experiment is archived when it ends: a killed process leaves none.
"""

from __future__ import annotations

import logging
import os
import time
import zipfile
from collections.abc import Mapping
from typing import Any

from lifecycle.integrations.base import GeneralTracker
from lifecycle.integrations.network import reachable

__all__ = ["CometTracker"]

logger = logging.getLogger("lifecycle.integrations")

#: Comet settings that would make it log things nobody asked for, or reach out to the network
_QUIET = {
    "log_code": False,
    "log_graph": False,
    "parse_args": False,
    "log_git_metadata": False,
    "log_git_patch": False,
    "log_env_details": False,
    "auto_output_logging": False,
    "auto_param_logging": False,
    "auto_metric_logging": False,
    "auto_log_co2": False,
    "display_summary_level": 0,
}


def _late_import_notice(record: logging.LogRecord) -> bool:
    """False for Comet's advice to import it before torch: auto-logging is off here, so it does not apply."""
    return "import comet_ml before" not in str(record.msg)


class CometTracker(GeneralTracker):
    """Logs parameters, metrics (with step and epoch) and text to one Comet experiment named after the run."""

    name = "comet_ml"
    requires_logging_directory = False
    #: what ``report_to="all"`` needs set before it takes this tracker
    needs_setup = "COMET_API_KEY, ~/.comet.config, or COMET_MODE=offline"

    def __init__(
        self,
        run_name: str | None = None,
        *,
        offline_directory: str | None = None,
        project_name: str | None = None,
        **experiment_config: Any,
    ):
        self.run_name = run_name
        self.offline_directory = offline_directory or os.environ.get("COMET_OFFLINE_DIRECTORY") or "comet"
        self.project_name = project_name
        self.experiment_config = {**_QUIET, **experiment_config}
        self.experiment: Any = None
        self._continue: dict[str, Any] | None = None
        self._placeholder: str | None = None

    @classmethod
    def from_args(cls, args: Any) -> CometTracker:
        """Named after the run; offline archives in ``$COMET_OFFLINE_DIRECTORY`` or ``<output_dir>/comet``."""
        folder = os.environ.get("COMET_OFFLINE_DIRECTORY") or os.path.join(args.output_dir, "comet")
        return cls(args.run_name, offline_directory=folder)

    @classmethod
    def configured(cls) -> bool:
        """Whether Comet is set up (an API key, or ``COMET_MODE=offline``); ``"all"`` needs it."""
        return bool(
            os.environ.get("COMET_API_KEY")
            or os.environ.get("COMET_MODE", "").lower() == "offline"
            or os.path.exists(os.path.expanduser("~/.comet.config"))
        )

    @property
    def tracker(self) -> Any:
        """The ``comet_ml`` experiment (an ``OfflineExperiment`` when offline)."""
        return self.experiment

    def start(self) -> None:
        if self.experiment is not None:
            return
        import comet_ml

        notices = logging.getLogger("comet_ml.experiment")
        if _late_import_notice not in notices.filters:
            notices.addFilter(_late_import_notice)
        config = comet_ml.get_config()
        online = self._wants_online(config)
        if online and not reachable(config.get_string(None, "comet.url_override") or "https://www.comet.com"):
            logger.warning(
                "Comet is out of reach; writing the experiment offline in %s", self.offline_directory
            )
            online = False
        self.experiment = self._begin(comet_ml, online)
        if online and not getattr(self.experiment, "alive", True):
            logger.warning("Comet refused the experiment; writing it offline in %s", self.offline_directory)
            self.experiment.end()
            self.experiment = self._begin(comet_ml, False)

    def run_identity(self) -> dict[str, Any] | None:
        """The experiment's ``experiment_key``, ``project_name`` and ``workspace``."""
        if self.experiment is None:
            return None
        return {
            "experiment_key": self.experiment.get_key(),
            "project_name": self.experiment.project_name,
            "workspace": self.experiment.workspace,
        }

    def continue_run(self, identity: Mapping[str, Any]) -> None:
        """The next ``start`` continues the experiment ``identity["experiment_key"]`` names."""
        self._continue = dict(identity)

    def _wants_online(self, config: Any) -> bool:
        mode = os.environ.get("COMET_MODE", "").lower()
        if mode == "offline":
            return False
        flag = os.environ.get("COMET_START_ONLINE")
        if flag is not None:
            return flag.lower() in ("1", "true", "yes")
        return bool(config.get_string(None, "comet.api_key"))

    def _begin(self, comet_ml: Any, online: bool) -> Any:
        if not online:
            os.makedirs(self.offline_directory, exist_ok=True)
        settings = comet_ml.ExperimentConfig(
            name=self.run_name, offline_directory=self.offline_directory, **self.experiment_config
        )
        mode = os.environ.get(
            "COMET_MODE", ""
        ).lower()  # Hugging Face's values: continue an experiment or not
        named = self._continue if mode != "create" else None
        experiment = comet_ml.start(
            online=online,
            mode="get_or_create" if named else mode if mode in ("get", "create", "get_or_create") else None,
            experiment_key=named["experiment_key"] if named else None,
            project_name=(named or {}).get("project_name") or self.project_name,
            workspace=(named or {}).get("workspace"),
            experiment_config=settings,
        )
        drawn = getattr(experiment, "offline_archive_name_suffix", None)
        if not online and drawn is not None:  # the archive's name: unique per process, in the order they ran
            experiment.offline_archive_name_suffix = f"{time.time_ns():x}"
            # Comet wrote an empty archive under the drawn name to try the folder: removed at the end
            self._placeholder = os.path.join(experiment.offline_directory, f"{experiment.id}-{drawn}.zip")
        return experiment

    def store_init_configuration(self, values: dict[str, Any]) -> None:
        self.start()
        self.experiment.log_parameters(values)

    def log(self, values: dict[str, Any], step: int | None = None, **kwargs: Any) -> None:
        """Numbers as metrics at ``step`` (and the epoch found in ``values``), strings as text."""
        self.start()
        epoch = kwargs.pop("epoch", values.get("train/epoch", values.get("epoch")))
        metrics = {k: v for k, v in values.items() if not isinstance(v, str)}
        if metrics:
            self.experiment.log_metrics(metrics, step=step, epoch=epoch, **kwargs)
        for key, text in values.items():
            if isinstance(text, str):
                self.experiment.log_text(text, step=step, metadata={"name": key})

    def finish(self) -> None:
        if self.experiment is not None:
            self.experiment.end()
            self.experiment = None
            self._continue = None
        if self._placeholder is not None:
            _remove_if_empty(self._placeholder)
            self._placeholder = None


def _remove_if_empty(archive: str) -> None:
    """Remove ``archive`` if it is a zip with nothing in it."""
    try:
        with zipfile.ZipFile(archive) as z:
            empty = not z.namelist()
        if empty:
            os.remove(archive)
    except (OSError, zipfile.BadZipFile):
        pass
