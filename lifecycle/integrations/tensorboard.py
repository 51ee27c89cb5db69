"""TensorBoardTracker: scalars, text, the run's arguments and hparams, written with tensorboardX."""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from lifecycle.integrations.base import GeneralTracker

__all__ = ["TensorBoardTracker", "default_logging_dir"]


def default_logging_dir(output_dir: str) -> str:
    """``<output_dir>/runs/<date>_<host>``, the folder PyTorch and Hugging Face pick."""
    stamp = datetime.now().strftime("%b%d_%H-%M-%S")
    return os.path.join(output_dir, "runs", f"{stamp}_{socket.gethostname()}")


def _hparam(value: Any) -> bool | int | float | str:
    """A value the hparams plugin shows: numbers, booleans and text as they are, the rest as JSON text."""
    return value if isinstance(value, (bool, int, float, str)) else json.dumps(value, default=repr)


class TensorBoardTracker(GeneralTracker):
    """Event files under ``logging_dir``: a scalar per metric, text for strings, hparams at the end.

    A resumed training writes into the folder its checkpoint names, unless a folder was chosen
    (``logging_dir``, ``$TENSORBOARD_LOGGING_DIR``): the dated default would otherwise split the run in two.
    """

    name = "tensorboard"
    requires_logging_directory = True

    def __init__(
        self, run_name: str | None = None, logging_dir: str | os.PathLike[str] = "runs", **writer_kwargs: Any
    ):
        self.run_name = run_name
        self.logging_dir = os.fspath(logging_dir)
        self.writer_kwargs = writer_kwargs
        self.writer: Any = None
        self._purge_step: int | None = None
        self._hparams: dict[str, Any] = {}
        self._metrics: set[str] = set()
        #: whether ``logging_dir`` is the dated default, which a resumed training replaces by its own
        self.dated = False

    @classmethod
    def from_args(cls, args: Any) -> TensorBoardTracker:
        """``args.logging_dir`` or ``$TENSORBOARD_LOGGING_DIR`` or ``<output_dir>/runs/<date>_<host>``."""
        env = os.environ.get("TENSORBOARD_LOGGING_DIR")
        chosen = args.logging_dir or (os.path.expanduser(env) if env else None)
        tracker = cls(args.run_name, chosen or default_logging_dir(args.output_dir))
        tracker.dated = chosen is None
        return tracker

    @property
    def tracker(self) -> Any:
        """The ``tensorboardX.SummaryWriter``."""
        return self.writer

    def run_identity(self) -> dict[str, Any] | None:
        """The folder of the event files."""
        return {"logging_dir": os.path.abspath(self.logging_dir)}

    def continue_run(self, identity: Mapping[str, Any]) -> None:
        """Back into the folder the run wrote, if this one is the dated default and that one is there."""
        folder = identity.get("logging_dir")
        if self.dated and self.writer is None and isinstance(folder, str) and os.path.isdir(folder):
            self.logging_dir = folder

    def rewind(self, step: int) -> None:
        """Training (re)starts after ``step``: TensorBoard hides what an earlier run wrote past it here."""
        if self.writer is None:
            self._purge_step = step + 1

    def start(self) -> None:
        if self.writer is None:
            from tensorboardX import SummaryWriter

            # tensorboardX names event files by the second, and TensorBoard reads them in name order:
            # the full clock in the suffix keeps two writers of one second apart and in opening order
            settings = {"filename_suffix": f".{time.time_ns():020d}.{os.getpid()}", **self.writer_kwargs}
            self.writer = SummaryWriter(self.logging_dir, purge_step=self._purge_step, **settings)
            self._purge_step = None  # a writer reopened later (an evaluation after training) purges nothing

    def store_init_configuration(self, values: dict[str, Any]) -> None:
        """The configuration as a JSON text (tag ``args``) now; as hparams when the run finishes."""
        self.start()
        text = json.dumps(values, indent=2, sort_keys=True, default=repr)
        self.writer.add_text("args", "\n".join("    " + line for line in text.splitlines()))
        self.writer.flush()
        self._hparams = {key: _hparam(value) for key, value in values.items() if value is not None}

    def log(self, values: dict[str, Any], step: int | None = None, **kwargs: Any) -> None:
        self.start()
        for tag, value in values.items():
            if isinstance(value, str):
                self.writer.add_text(tag, value, global_step=step, **kwargs)
            else:
                self.writer.add_scalar(tag, value, global_step=step, **kwargs)
                self._metrics.add(tag)
        self.writer.flush()

    def finish(self) -> None:
        """Write the hparams (linked to every scalar this run logged) and close the event file."""
        if self.writer is None:
            return
        if self._hparams:
            from tensorboardX.summary import hparams

            file_writer = self.writer.file_writer
            for summary in hparams(self._hparams, dict.fromkeys(sorted(self._metrics))):
                file_writer.add_summary(summary)
        self.writer.close()
        self.writer = None
