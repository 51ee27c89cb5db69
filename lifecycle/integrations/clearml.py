"""ClearMLTracker: one ClearML task, online where ClearML is set up, else an offline session.

The project is ``$CLEARML_PROJECT`` (default ``lifecycle``), the task ``$CLEARML_TASK`` (default the run
name). ``$CLEARML_OFFLINE_MODE=1``, or no ClearML setup at all (no ``CLEARML_API_ACCESS_KEY``, no
``clearml.conf``), keeps the task offline under ``~/.clearml/cache/offline/<task id>/``; ``clearml-task
--import-offline-session <zip>`` uploads it later. A resumed training continues the same task
(``continue_last_task``), its iterations unshifted: iteration = ``state.global_step``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lifecycle.integrations.base import GeneralTracker

__all__ = ["ClearMLTracker"]

logger = logging.getLogger("lifecycle.integrations")

_TRUE = {"1", "true", "yes", "on"}


def _set_up() -> bool:
    """Whether ClearML has credentials or a configuration file to reach a server with."""
    if os.environ.get("CLEARML_API_ACCESS_KEY") or os.environ.get("CLEARML_CONFIG_FILE"):
        return True
    return any((Path.home() / name).is_file() for name in ("clearml.conf", ".clearml.conf"))


def _offline_asked() -> bool:
    return os.environ.get("CLEARML_OFFLINE_MODE", "").strip().lower() in _TRUE


class ClearMLTracker(GeneralTracker):
    """Hyperparameters under ``Args``, scalars as ``<group>/<name>`` (``train/loss``) at each step,
    strings as console text."""

    name = "clearml"
    requires_logging_directory = False

    def __init__(
        self,
        run_name: str | None = None,
        *,
        project: str | None = None,
        task: str | None = None,
        **init_kwargs: Any,
    ):
        self.project = project or os.environ.get("CLEARML_PROJECT") or "lifecycle"
        self.task_name = task or os.environ.get("CLEARML_TASK") or run_name or "Trainer"
        self.init_kwargs = init_kwargs
        self.task_id: str | None = None
        self.offline = False
        self._continue: str | None = None
        self.task: Any = None

    @classmethod
    def configured(cls) -> bool:
        """Whether ClearML is set up, or offline mode asked for; ``report_to="all"`` needs one."""
        return _offline_asked() or _set_up()

    @property
    def tracker(self) -> Any:
        """The ``clearml.Task``; None before ``start`` and after ``finish``."""
        return self.task

    def run_identity(self) -> dict[str, Any] | None:
        """The task's id, and whether it is an offline session."""
        return {"task_id": self.task_id, "offline": self.offline} if self.task_id else None

    def continue_run(self, identity: Mapping[str, Any]) -> None:
        """The next ``start`` continues the task ``identity`` names."""
        self._continue = str(identity["task_id"])

    def start(self) -> None:
        if self.task is not None:
            return
        from clearml import Task

        self.offline = _offline_asked() or not _set_up()
        if self.offline and not _offline_asked():
            logger.warning(
                "clearml is not set up (no clearml.conf, no CLEARML_API_ACCESS_KEY): the task is offline"
            )
        Task.set_offline(self.offline)
        settings: dict[str, Any] = {
            "project_name": self.project,
            "task_name": self.task_name,
            "auto_connect_frameworks": False,
            "auto_connect_arg_parser": False,
            "auto_resource_monitoring": False,
            "continue_last_task": self._continue or False,
            "reuse_last_task_id": False,
        }
        self.task = Task.init(**{**settings, **self.init_kwargs})
        if self._continue:
            self.task.set_initial_iteration(0)  # else ClearML shifts every iteration past the last one
        self.task_id = str(self.task.id)

    def store_init_configuration(self, values: dict[str, Any]) -> None:
        self.start()
        self.task.connect(values, name="Args")

    def log(self, values: dict[str, Any], step: int | None = None, **kwargs: Any) -> None:
        self.start()
        report = self.task.get_logger()
        for key, value in values.items():
            title, _, series = key.rpartition("/")
            if isinstance(value, str):
                report.report_text(f"{key}: {value}", iteration=step, print_console=False)
            else:
                report.report_scalar(title or key, series, value, iteration=step or 0)

    def finish(self) -> None:
        if self.task is not None:
            self.task.close()
            self.task = None
