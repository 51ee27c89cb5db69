"""SwanLabTracker: a SwanLab run; ``SWANLAB_MODE=offline`` (or no ``SWANLAB_API_KEY`` and no mode set)
keeps it under ``$SWANLAB_LOG_DIR`` (default ``<output_dir>/swanlog``); ``swanlab sync <folder>``
uploads it later.

The environment variables transformers' SwanLab callback reads are honoured: ``SWANLAB_PROJECT``,
``SWANLAB_RUN_ID`` with ``SWANLAB_RESUME``; SwanLab reads ``SWANLAB_MODE``, ``SWANLAB_LOG_DIR`` and its
API settings itself. (SwanLab's own settings cannot parse ``SWANLAB_PROJECT``, so it is hidden from
SwanLab while the run opens and passed as ``project=``.) A resumed training, and an evaluation after
training, continue the checkpoint's run (``id=``, ``resume="allow"``); offline, each process writes
a folder of its own, ``run-<time>-<id>``, all with the one run id.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from typing import Any

from lifecycle.integrations.base import GeneralTracker

__all__ = ["SwanLabTracker"]


@contextlib.contextmanager
def _hidden(variable: str) -> Iterator[None]:
    """``$variable`` out of the environment for the block, then back as it was."""
    value = os.environ.pop(variable, None)
    try:
        yield
    finally:
        if value is not None:
            os.environ[variable] = value


class SwanLabTracker(GeneralTracker):
    """The configuration as the run's config, numbers as scalars at their step, strings as text."""

    name = "swanlab"
    requires_logging_directory = False
    #: what ``report_to="all"`` needs set before it takes this tracker
    needs_setup = "SWANLAB_MODE or SWANLAB_API_KEY"

    def __init__(
        self,
        run_name: str | None = None,
        *,
        project: str | None = None,
        logdir: str | None = None,
        **init_kwargs: Any,
    ):
        self.run_name = run_name
        self.project = project or os.environ.get("SWANLAB_PROJECT") or os.environ.get("SWANLAB_PROJ_NAME")
        self.logdir = logdir
        self.init_kwargs = init_kwargs
        self.run: Any = None
        self._continue: dict[str, Any] | None = None

    @classmethod
    def from_args(cls, args: Any) -> SwanLabTracker:
        """Kept in ``$SWANLAB_LOG_DIR`` or ``<output_dir>/swanlog`` when not in the cloud."""
        return cls(
            args.run_name,
            logdir=os.environ.get("SWANLAB_LOG_DIR") or os.path.join(args.output_dir, "swanlog"),
        )

    @classmethod
    def configured(cls) -> bool:
        """Whether SwanLab is set up: ``SWANLAB_MODE`` or an API key; ``report_to="all"`` needs it."""
        return bool(os.environ.get("SWANLAB_MODE") or os.environ.get("SWANLAB_API_KEY"))

    @property
    def tracker(self) -> Any:
        """The ``swanlab`` run; None before ``start`` and after ``finish``."""
        return self.run

    def run_identity(self) -> dict[str, Any] | None:
        """The run's ``id`` and ``project``."""
        return {"id": self.run.id, "project": self.project} if self.run is not None else None

    def continue_run(self, identity: Mapping[str, Any]) -> None:
        """The next ``start`` continues the run ``identity["id"]`` (``resume="allow"``)."""
        self._continue = dict(identity)

    def start(self) -> None:
        if self.run is not None:
            return
        import swanlab

        named, self._continue = self._continue or {}, None
        kwargs: dict[str, Any] = dict(self.init_kwargs)
        run_id = named.get("id") or os.environ.get("SWANLAB_RUN_ID")
        if run_id:
            kwargs.update(id=run_id, resume=os.environ.get("SWANLAB_RESUME") or "allow")
        if self.logdir is not None:
            os.makedirs(self.logdir, exist_ok=True)
        if not (os.environ.get("SWANLAB_MODE") or os.environ.get("SWANLAB_API_KEY")):
            kwargs.setdefault("mode", "offline")  # no account set up: kept locally, never a login prompt
        with _hidden("SWANLAB_PROJECT"):
            self.run = swanlab.init(
                project=named.get("project") or self.project,
                name=self.run_name,
                log_dir=self.logdir,
                **kwargs,
            )

    def store_init_configuration(self, values: dict[str, Any]) -> None:
        self.start()
        self.run.config.update(values)

    def log(self, values: dict[str, Any], step: int | None = None, **kwargs: Any) -> None:
        import swanlab

        self.start()
        data = {key: swanlab.Text(v) if isinstance(v, str) else v for key, v in values.items()}
        self.run.log(data, step=step)

    def finish(self) -> None:
        if self.run is not None:
            self.run.finish()
            self.run = None
