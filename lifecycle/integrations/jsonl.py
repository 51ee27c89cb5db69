"""JSONLTracker: the local metrics log, one JSON object per log (the logged values and ``step``)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import IO, Any

from lifecycle.integrations.base import GeneralTracker

__all__ = ["METRICS_FILE", "JSONLTracker", "read_jsonl"]

METRICS_FILE = "metrics.jsonl"


class JSONLTracker(GeneralTracker):
    """Appends each log to ``path`` as one line; each line equals the run's ``state.log_history`` entry."""

    name = "jsonl"
    requires_logging_directory = True
    rewrite_metric_names = False

    def __init__(
        self, run_name: str | None = None, logging_dir: str | os.PathLike[str] = ".", *, path: Any = None
    ):
        self.run_name = run_name
        self.path = Path(path) if path is not None else Path(logging_dir) / METRICS_FILE
        self._file: IO[str] | None = None

    @classmethod
    def from_args(cls, args: Any) -> JSONLTracker:
        """``<output_dir>/metrics.jsonl``."""
        return cls(args.run_name, args.output_dir)

    @property
    def tracker(self) -> IO[str] | None:
        return self._file

    def rewind(self, step: int) -> None:
        """Training (re)starts at ``step``: keep the lines up to it (a resume), none at step 0 (a new run)."""
        self.finish()
        if not self.path.exists():
            return
        kept = [entry for entry in read_jsonl(self.path) if step > 0 and entry.get("step", 0) <= step]
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(entry) + "\n" for entry in kept), encoding="utf-8")
        os.replace(tmp, self.path)

    def start(self) -> None:
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "a", encoding="utf-8")  # kept open for the run

    def log(self, values: dict[str, Any], step: int | None = None, **kwargs: Any) -> None:
        self.start()
        assert self._file is not None
        self._file.write(json.dumps({**values, "step": step}) + "\n")
        self._file.flush()

    def finish(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def read_jsonl(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The entries of a metrics log, in order."""
    with open(path, encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]
