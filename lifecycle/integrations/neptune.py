"""NeptuneTracker: one Neptune (1.x) run, laid out as transformers' ``NeptuneCallback`` lays it out.

Neptune reads its own settings: ``$NEPTUNE_PROJECT``, ``$NEPTUNE_API_TOKEN``, ``$NEPTUNE_MODE``
(``async``, ``sync``, ``offline``, ``debug``...), ``$NEPTUNE_CUSTOM_RUN_ID``. Without a token the run is
offline, under ``.neptune/`` in the current folder (``neptune sync`` uploads it later).

Under ``finetuning/`` (``base_namespace=``): the arguments and model config in
``trainer_parameters``, each metric a series at its step (``train/loss``, ``eval/loss``; strings as
text series), ``train/epoch`` a single value. A resumed training continues the same run online
(by its ``sys/id``); an offline run cannot be continued (Neptune 1.x looks runs up on its server), so a
resume offline starts a new run, into which the metrics logged before the checkpoint are written again.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

from lifecycle.integrations.base import GeneralTracker
from lifecycle.integrations.network import PROBE_SECONDS, reachable
from lifecycle.integrations.values import loggable, rewrite_names

__all__ = ["NeptuneTracker"]

logger = logging.getLogger("lifecycle.integrations")

_FLAT = {"train/epoch"}  # a single value, not a series (as transformers writes it)
_OFFLINE_PROJECT = "lifecycle/offline"  # any "workspace/project" does offline


class NeptuneTracker(GeneralTracker):
    """Arguments as ``<base>/trainer_parameters``, metrics as series ``<base>/<group>/<name>``."""

    name = "neptune"
    #: what ``report_to="all"`` needs set before it takes this tracker
    needs_setup = "NEPTUNE_API_TOKEN or NEPTUNE_MODE"
    requires_logging_directory = False

    def __init__(
        self,
        run_name: str | None = None,
        *,
        project: str | None = None,
        api_token: str | None = None,
        base_namespace: str = "finetuning",
        **init_kwargs: Any,
    ):
        self.run_name = run_name
        self.project = project or os.environ.get("NEPTUNE_PROJECT")
        self.api_token = api_token or os.environ.get("NEPTUNE_API_TOKEN")
        self.base_namespace = base_namespace
        self.init_kwargs = init_kwargs
        self.run_id: str | None = None
        self._continue: str | None = None
        self._replay: list[Mapping[str, Any]] = []
        self.run: Any = None

    @classmethod
    def configured(cls) -> bool:
        """Whether Neptune is set up (``$NEPTUNE_API_TOKEN``, or ``$NEPTUNE_MODE``); ``"all"`` needs one."""
        return bool(os.environ.get("NEPTUNE_API_TOKEN") or os.environ.get("NEPTUNE_MODE"))

    @property
    def tracker(self) -> Any:
        """The ``neptune.Run``; None before ``start`` and after ``finish``."""
        return self.run

    def _mode(self) -> str:
        """``$NEPTUNE_MODE`` (or ``mode=``) as given; else online (async) when a token is set and
        Neptune's server answers within 3 s, offline otherwise (a warning says why)."""
        mode = os.environ.get("NEPTUNE_MODE") or self.init_kwargs.get("mode")
        if mode:
            return str(mode)
        if not self.api_token:
            logger.warning(
                "neptune: no NEPTUNE_API_TOKEN, so the run is offline (upload it with `neptune sync`)"
            )
            return "offline"
        from neptune.internal.credentials import Credentials

        credentials = Credentials.from_token(self.api_token)
        server = credentials.api_url_opt or credentials.token_origin_address
        if not reachable(server):
            logger.warning(
                "neptune: %s did not answer within %g s, so the run is offline", server, PROBE_SECONDS
            )
            return "offline"
        return "async"

    def run_identity(self) -> dict[str, Any] | None:
        """The run's ``sys/id`` online; None offline, where Neptune cannot continue a run."""
        return {"with_id": self.run_id} if self.run_id else None

    def continue_run(self, identity: Mapping[str, Any]) -> None:
        """The next ``start`` continues the run ``identity`` names (on Neptune's server)."""
        self._continue = str(identity["with_id"])

    def rewind(self, step: int, history: Sequence[Mapping[str, Any]] | None = None) -> None:
        """Training (re)starts at ``step``: a new run (offline, or nothing to continue) gets the logs up
        to there again, so it holds the whole training."""
        self._replay = [entry for entry in history or () if 0 < entry.get("step", 0) <= step]

    def start(self) -> None:
        if self.run is not None:
            return
        import neptune

        mode = self._mode()
        offline = mode in ("offline", "debug")
        continued, self._continue = self._continue, None
        if continued is not None and offline:
            logger.warning("neptune: run %s cannot be continued offline; this is a new run", continued)
            continued = None
        settings: dict[str, Any] = {
            "project": self.project or (_OFFLINE_PROJECT if offline else None),
            "api_token": self.api_token,
            "name": self.run_name,
            "mode": mode,
            "capture_stdout": False,
            "capture_stderr": False,
            "capture_hardware_metrics": False,
            "capture_traceback": False,
        }
        if continued is not None:
            settings["with_id"] = continued
        self.run = neptune.init_run(**{**settings, **self.init_kwargs})
        if not offline:  # offline ids name nothing Neptune could look up later
            self.run_id = str(self.run["sys/id"].fetch())
        replay, self._replay = ([] if continued else self._replay), []
        for entry in replay:
            values = loggable({k: v for k, v in entry.items() if k != "step"}, set())
            self.log(rewrite_names(values), step=entry.get("step"))

    def store_init_configuration(self, values: dict[str, Any]) -> None:
        from neptune.utils import stringify_unsupported

        self.start()
        self.run[f"{self.base_namespace}/trainer_parameters"] = stringify_unsupported(values)

    def log(self, values: dict[str, Any], step: int | None = None, **kwargs: Any) -> None:
        self.start()
        for key, value in values.items():
            field = self.run[f"{self.base_namespace}/{key}"]
            if key in _FLAT:
                field.assign(value)
            else:
                field.append(value, step=step)

    def finish(self) -> None:
        if self.run is not None:
            self.run.stop()
            self.run = None
