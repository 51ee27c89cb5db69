"""DagsHubTracker: the MLflow tracker, pointed at a DagsHub repository's MLflow server.

``$MLFLOW_TRACKING_URI`` names the server (``https://dagshub.com/<owner>/<repo>.mlflow``), and MLflow's
own ``$MLFLOW_TRACKING_USERNAME`` / ``$MLFLOW_TRACKING_PASSWORD`` (a DagsHub token) sign in: no
interactive login is ever started (``dagshub.init()`` would start one), and a server out of reach
disables the tracker within seconds instead of holding the end of training. Any other MLflow store
(``sqlite:...``, ``file:...``) works too, to upload later. ``$HF_DAGSHUB_LOG_ARTIFACTS=true`` uploads
``output_dir`` as the run's artifacts (under ``artifacts/``) at the end, as transformers does.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlparse

from lifecycle.args import ArgumentError
from lifecycle.integrations.mlflow import MLflowTracker
from lifecycle.integrations.network import PROBE_SECONDS, reachable

__all__ = ["DagsHubTracker"]

_TRUE = {"1", "true", "yes", "on", "y"}


class DagsHubTracker(MLflowTracker):
    """As :class:`MLflowTracker`, and ``output_dir`` uploaded at the end if asked."""

    name = "dagshub"
    #: what ``report_to="all"`` needs set before it takes this tracker
    needs_setup = "MLFLOW_TRACKING_URI at a DagsHub server"

    def __init__(
        self,
        run_name: str | None = None,
        *,
        output_dir: str | os.PathLike[str] | None = None,
        log_artifacts: bool | None = None,
        **mlflow_kwargs: Any,
    ):
        super().__init__(run_name, **mlflow_kwargs)
        self.output_dir = os.fspath(output_dir) if output_dir is not None else None
        if log_artifacts is None:
            log_artifacts = os.environ.get("HF_DAGSHUB_LOG_ARTIFACTS", "").strip().lower() in _TRUE
        self.log_artifacts = log_artifacts

    @classmethod
    def from_args(cls, args: Any) -> DagsHubTracker:
        """Needs ``$MLFLOW_TRACKING_URI``: said at once, before training, where it is missing."""
        if not os.environ.get("MLFLOW_TRACKING_URI"):
            raise ArgumentError(
                "TrainingArguments.report_to: 'dagshub' needs MLFLOW_TRACKING_URI, e.g. "
                "https://dagshub.com/<owner>/<repo>.mlflow with MLFLOW_TRACKING_USERNAME and "
                "MLFLOW_TRACKING_PASSWORD (a DagsHub token), or a local MLflow store to upload later"
            )
        return cls(args.run_name, output_dir=args.output_dir)

    @classmethod
    def configured(cls) -> bool:
        """Whether ``$MLFLOW_TRACKING_URI`` points at DagsHub; ``report_to="all"`` needs it."""
        host = urlparse(os.environ.get("MLFLOW_TRACKING_URI", "")).hostname or ""
        return host == "dagshub.com" or host.endswith(".dagshub.com")

    def start(self) -> None:
        if self.run is not None:
            return
        uri = self.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI", "")
        if uri.startswith(("http://", "https://")) and not reachable(uri):
            raise ConnectionError(f"dagshub: {uri} did not answer within {PROBE_SECONDS:g} s")
        super().start()

    def finish(self) -> None:
        if self.run is not None and self.log_artifacts and self.output_dir and os.path.isdir(self.output_dir):
            self.client.log_artifacts(self.run_id, self.output_dir, "artifacts")
        super().finish()
