"""JSONLTracker: the local metrics log, one JSON object per log (the logged values and ``step``).

A process killed while writing leaves a last line without its newline: the log cuts it before it
writes again, and :func:`read_jsonl` leaves it out.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
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

    def rewind(self, step: int, history: Sequence[Mapping[str, Any]] | None = None) -> None:
        """Training (re)starts at ``step``: none of the lines at step 0 (a new run), else the lines up to
        the checkpoint. With ``history`` (the resumed run's ``log_history``) only as many lines at
        ``step`` as it holds: the lines logged after the checkpoint was written, at its own step, go too.
        """
        self.finish()
        if not self.path.exists():
            return
        entries = _complete_entries(self.path)
        if step <= 0:
            kept = []
        elif history is None:
            kept = [entry for entry in entries if entry.get("step", 0) <= step]
        else:
            at_step = sum(1 for entry in history if entry.get("step") == step)
            kept = [entry for entry in entries if entry.get("step", 0) < step]
            kept += [entry for entry in entries if entry.get("step", 0) == step][:at_step]
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(entry) + "\n" for entry in kept), encoding="utf-8")
        os.replace(tmp, self.path)

    def start(self) -> None:
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            _cut_partial_line(self.path)
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
    """The entries of a metrics log, in order (a last line cut short by a killed writer left out)."""
    return _complete_entries(Path(path))


def _complete_entries(path: Path) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    entries = [json.loads(line) for line in lines[:-1] if line.strip()]
    last = lines[-1]  # after the final newline: empty, or a line still being (or never fully) written
    if last.strip():
        try:
            entries.append(json.loads(last))
        except ValueError:
            pass
    return entries


def _cut_partial_line(path: Path) -> None:
    """End ``path`` with a newline: a last line a killed process did not finish is cut (one that is
    whole JSON gets its newline)."""
    try:
        with open(path, "rb+") as log:
            data = log.read()
            if not data or data.endswith(b"\n"):
                return
            start = data.rfind(b"\n") + 1
            try:
                json.loads(data[start:])
            except ValueError:
                log.truncate(start)
            else:
                log.write(b"\n")
    except FileNotFoundError:
        pass
