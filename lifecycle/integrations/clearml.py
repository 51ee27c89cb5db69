"""ClearMLTracker: one ClearML task, online where ClearML is set up and answers, else offline.

The project is ``$CLEARML_PROJECT`` (default ``lifecycle``), the task ``$CLEARML_TASK`` (default the run
name). The task is offline, under ``~/.clearml/cache/offline/<task id>/``, with
``$CLEARML_OFFLINE_MODE=1``, without any ClearML setup (no ``CLEARML_API_ACCESS_KEY``, no
``clearml.conf``), or when the server does not answer within 3 s; ``clearml-task
--import-offline-session <zip>`` uploads it later. A resumed training continues the same task
(``continue_last_task``), its iterations unshifted: iteration = ``state.global_step``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from lifecycle.integrations.base import GeneralTracker
from lifecycle.integrations.held import HeldPoints
from lifecycle.integrations.network import PROBE_SECONDS, reachable

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


def _graph(key: str) -> tuple[str, str]:
    """``train/loss`` -> graph ``train``, series ``loss``; ``acc`` -> graph and series ``acc``."""
    title, _, series = key.rpartition("/")
    return (title, series) if title else (key, key)


def _key(title: str, series: str) -> str:
    return title if title == series else f"{title}/{series}"


class ClearMLTracker(GeneralTracker):
    """Hyperparameters under ``Args``, scalars as ``<group>/<name>`` (``train/loss``) at each step,
    strings as console text."""

    name = "clearml"
    #: what ``report_to="all"`` needs set before it takes this tracker
    needs_setup = "a ClearML configuration (clearml.conf, CLEARML_API_ACCESS_KEY) or CLEARML_OFFLINE_MODE=1"
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
        self._rewind: tuple[int, Sequence[Mapping[str, Any]] | None] | None = None
        self._held: HeldPoints | None = None
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

    def rewind(self, step: int, history: Sequence[Mapping[str, Any]] | None = None) -> None:
        """Training (re)starts at ``step``: a continued task's scalars past it are not reported again
        (ClearML deletes none, and the resumed training reproduces them)."""
        self._rewind = (step, history)

    def start(self) -> None:
        if self.task is not None:
            return
        from clearml import Task

        self.offline = self._offline()
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
        continued, self._continue = self._continue, None
        rewind, self._rewind = self._rewind, None
        if continued:
            self.task.set_initial_iteration(0)  # else ClearML shifts every iteration past the last one
            if rewind is not None and rewind[0] > 0:
                self._held = HeldPoints(self._reported(), *rewind)
        self.task_id = str(self.task.id)

    @staticmethod
    def _offline() -> bool:
        """Offline if asked, if ClearML is not set up, or if its server does not answer (a warning each)."""
        if _offline_asked():
            return True
        if not _set_up():
            logger.warning(
                "clearml is not set up (no clearml.conf, no CLEARML_API_ACCESS_KEY): the task is offline"
            )
            return True
        from clearml.backend_api import Session

        server = Session.get_api_server_host()
        if not reachable(server):
            logger.warning(
                "clearml: %s did not answer within %g s: the task is offline", server, PROBE_SECONDS
            )
            return True
        return False

    def _reported(self) -> Iterator[tuple[str, int]]:
        """Every scalar point the task holds, as ``(key, iteration)``."""
        folder = self.task.get_offline_mode_folder() if self.offline else None
        if folder is not None:
            metrics = Path(folder) / "metrics.jsonl"
            lines = metrics.read_text(encoding="utf-8").splitlines() if metrics.exists() else []
            for line in lines:
                for event in json.loads(line) if line.strip() else ():
                    if event.get("type") == "training_stats_scalar":
                        yield _key(event["metric"], event["variant"]), int(event["iter"])
            return
        for title, graphs in self.task.get_all_reported_scalars().items():
            for series, points in graphs.items():
                yield from ((_key(title, series), int(x)) for x in points["x"])

    def store_init_configuration(self, values: dict[str, Any]) -> None:
        self.start()
        self.task.connect(values, name="Args")

    def log(self, values: dict[str, Any], step: int | None = None, **kwargs: Any) -> None:
        self.start()
        report = self.task.get_logger()
        for key, value in values.items():
            if isinstance(value, str):
                report.report_text(f"{key}: {value}", iteration=step, print_console=False)
            elif not (self._held and self._held.take(key, step or 0)):
                report.report_scalar(*_graph(key), value, iteration=step or 0)

    def flush(self) -> None:
        """Write out the reports ClearML buffers (before a checkpoint, so a resume finds them)."""
        if self.task is not None:
            self.task.flush(wait_for_uploads=True)

    def finish(self) -> None:
        if self.task is not None:
            self.task.close()
            self.task = None
