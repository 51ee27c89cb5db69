"""WandBTracker: a W&B run, online when an API key is set up and the server answers, else offline.

Offline (``WANDB_MODE=offline``, no API key, or the server out of reach) the run is kept under
``<dir>/wandb/offline-run-*``; ``wandb sync <folder>`` uploads it later.

A resumed training continues the checkpoint's run (``id=`` with ``resume="allow"``). Offline, each
process writes a folder of its own, ``offline-run-<time>-<id>``, all with the one run id: ``wandb sync``
uploads them into that run in the order they started.
"""

from __future__ import annotations

import logging
import netrc
import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlparse

from lifecycle.integrations.base import GeneralTracker
from lifecycle.integrations.network import reachable

__all__ = ["WandBTracker"]

logger = logging.getLogger("lifecycle.integrations")

_SERVER = "https://api.wandb.ai"


def _has_key(server: str) -> bool:
    """Whether ``$WANDB_API_KEY`` or ``~/.netrc`` holds a key for ``server``."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators(urlparse(server).hostname or "") is not None
    except (OSError, netrc.NetrcParseError):
        return False


class WandBTracker(GeneralTracker):
    """Logs the configuration as the run's config and metrics (and strings) at their step."""

    name = "wandb"
    requires_logging_directory = False
    #: what ``report_to="all"`` needs set before it takes this tracker
    needs_setup = "WANDB_API_KEY, a key in ~/.netrc, or WANDB_MODE"

    def __init__(
        self,
        run_name: str | None = None,
        *,
        project: str | None = None,
        dir: str | None = None,
        **init_kwargs: Any,
    ):
        self.run_name = run_name
        self.project = project or os.environ.get("WANDB_PROJECT") or "lifecycle"
        self.dir = dir
        self.init_kwargs = init_kwargs
        self.run: Any = None
        self._identity: dict[str, Any] | None = None

    @classmethod
    def from_args(cls, args: Any) -> WandBTracker:
        """Kept in ``$WANDB_DIR`` or ``output_dir``; project ``$WANDB_PROJECT`` or lifecycle."""
        return cls(args.run_name, dir=os.environ.get("WANDB_DIR") or args.output_dir)

    @classmethod
    def configured(cls) -> bool:
        """Whether W&B is set up (an API key, or ``WANDB_MODE`` set); ``report_to="all"`` needs it."""
        return bool(os.environ.get("WANDB_MODE")) or _has_key(os.environ.get("WANDB_BASE_URL", _SERVER))

    @property
    def tracker(self) -> Any:
        """The ``wandb`` run; None before ``start`` and after ``finish``."""
        return self.run

    def _mode(self) -> str:
        mode = os.environ.get("WANDB_MODE")
        if mode:
            return mode
        server = os.environ.get("WANDB_BASE_URL", _SERVER)
        if not _has_key(server):
            return "offline"
        if not reachable(server):
            logger.warning("W&B is out of reach; keeping the run offline (upload it later with `wandb sync`)")
            return "offline"
        return "online"

    def start(self) -> None:
        if self.run is not None:
            return
        import wandb

        if self.dir is not None:
            os.makedirs(self.dir, exist_ok=True)
        settings = wandb.Settings(console="off", silent=True, x_disable_stats=True)
        named, self._identity = self._identity or {}, None
        kwargs = dict(self.init_kwargs)
        if named.get("id"):
            kwargs.update(id=named["id"], resume="allow")
        if named.get("entity"):
            kwargs["entity"] = named["entity"]
        self.run = wandb.init(
            project=named.get("project") or self.project,
            name=self.run_name,
            dir=self.dir,
            mode=self._mode(),  # type: ignore[arg-type]  # WANDB_MODE is passed through as given
            settings=settings,
            **kwargs,
        )

    def run_identity(self) -> dict[str, Any] | None:
        """The run's ``id``, ``project`` and ``entity`` (None when offline)."""
        if self.run is None:
            return None
        return {"id": self.run.id, "project": self.run.project, "entity": self.run.entity or None}

    def continue_run(self, identity: Mapping[str, Any]) -> None:
        """The next ``start`` continues the run ``identity`` names (``resume="allow"``)."""
        self._identity = dict(identity)

    def store_init_configuration(self, values: dict[str, Any]) -> None:
        self.start()
        self.run.config.update(values, allow_val_change=True)

    def log(self, values: dict[str, Any], step: int | None = None, **kwargs: Any) -> None:
        self.start()
        self.run.log(values, step=step, **kwargs)

    def finish(self) -> None:
        if self.run is not None:
            self.run.finish()
            self.run = None
