"""CometTracker: a Comet experiment, online when an API key is set up and Comet answers, else offline.

Offline (``COMET_MODE=offline``, no API key, or the server out of reach) the experiment is written as
a zip under ``$COMET_OFFLINE_DIRECTORY`` (default ``<output_dir>/comet``); ``comet upload <zip>``
sends it later. Nothing here waits on the network for more than a few seconds.
"""

from __future__ import annotations

import logging
import os
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
        return comet_ml.start(
            online=online,
            mode=mode if mode in ("get", "create", "get_or_create") else None,
            project_name=self.project_name,
            experiment_config=settings,
        )

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
