"""AimTracker: one Aim run in a local repository, continued by its hash when training resumes.

The repository is the folder given (from the arguments: ``logging_dir``, else ``output_dir``), created
where missing; ``aim up --repo <folder>`` shows it. The configuration goes to ``run["hparams"]``,
numbers to metric sequences at their step, strings to ``aim.Text`` sequences. System and terminal
tracking are off unless asked for (``system_tracking_interval=``, ``capture_terminal_logs=True``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from lifecycle.integrations.base import GeneralTracker

__all__ = ["AimTracker"]


class AimTracker(GeneralTracker):
    """The run's configuration as ``hparams``, its metrics and text as sequences at their step."""

    name = "aim"
    requires_logging_directory = True

    def __init__(
        self,
        run_name: str | None = None,
        logging_dir: str | os.PathLike[str] = ".",
        *,
        experiment: str | None = None,
        **run_kwargs: Any,
    ):
        self.run_name = run_name
        self.repo = os.fspath(logging_dir)
        self.experiment = experiment
        self.run_kwargs = {
            "system_tracking_interval": None,
            "log_system_params": False,
            "capture_terminal_logs": False,
            **run_kwargs,
        }
        self.run_hash: str | None = None
        self._continue: str | None = None
        self.run: Any = None

    @classmethod
    def from_args(cls, args: Any) -> AimTracker:
        """The repository is ``args.logging_dir``, else ``output_dir``."""
        return cls(args.run_name, args.logging_dir or args.output_dir)

    @property
    def tracker(self) -> Any:
        """The ``aim.Run``; None before ``start`` and after ``finish``."""
        return self.run

    def run_identity(self) -> dict[str, Any] | None:
        """The run's hash and repository, once it is open."""
        return {"run_hash": self.run_hash, "repo": os.path.abspath(self.repo)} if self.run_hash else None

    def continue_run(self, identity: Mapping[str, Any]) -> None:
        """The next ``start`` opens the run ``identity`` names, in this tracker's repository."""
        self._continue = str(identity["run_hash"])

    def start(self) -> None:
        if self.run is not None:
            return
        from aim import Run

        os.makedirs(self.repo, exist_ok=True)
        which, self._continue = self._continue, None
        self.run = Run(which, repo=self.repo, experiment=self.experiment, **self.run_kwargs)
        self.run_hash = self.run.hash
        if which is None and self.run_name:
            self.run.name = self.run_name

    def store_init_configuration(self, values: dict[str, Any]) -> None:
        self.start()
        self.run["hparams"] = values

    def log(self, values: dict[str, Any], step: int | None = None, **kwargs: Any) -> None:
        from aim import Text

        self.start()
        for key, value in values.items():
            self.run.track(Text(value) if isinstance(value, str) else value, name=key, step=step, **kwargs)

    def finish(self) -> None:
        if self.run is not None:
            self.run.close()
            self.run = None
