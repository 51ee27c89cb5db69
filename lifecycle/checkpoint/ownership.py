"""One run per ``output_dir``: run ids, the checks ``train()`` makes before any work, and paths stored
relative to the folder.

Each run has an id (``TrainerState.run_id``), written into each of its checkpoints. A run starting into
an ``output_dir`` refuses one that holds another run's checkpoints, unless told to replace them
(``overwrite_output_dir``: they are removed when this run writes its first checkpoint). Rotation touches
only the run's own checkpoints. No torch here.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from uuid import uuid4

from lifecycle.checkpoint.folder import MANIFEST, STATE_FILE, list_checkpoints
from lifecycle.checkpoint.lock import OutputDirError

__all__ = [
    "check_writable",
    "inside",
    "latest_run",
    "new_run_id",
    "refuse_other_runs",
    "remove_other_runs",
    "run_id_of",
]

RunId = str | None


def new_run_id() -> str:
    return uuid4().hex


def run_id_of(checkpoint: str | Path) -> RunId:
    """The run id a checkpoint's state file names; ``None`` when it names none or cannot be read."""
    try:
        data = json.loads((Path(checkpoint) / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None
    run_id = data.get("run_id") if isinstance(data, dict) else None
    return run_id if isinstance(run_id, str) else None


def check_writable(output_dir: str | Path) -> None:
    """Create ``output_dir`` and a file in it, or raise :class:`OutputDirError` naming the path."""
    root = Path(output_dir)
    try:
        root.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-probe-", dir=root)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OutputDirError(
            f"output_dir {root} is not writable ({exc.strerror or exc}); fix its permissions or choose "
            "another output_dir"
        ) from None


def _others(output_dir: str | Path, own: set[RunId]) -> dict[RunId, list[Path]]:
    found: dict[RunId, list[Path]] = {}
    for folder in list_checkpoints(output_dir):
        run_id = run_id_of(folder)
        if run_id not in own:
            found.setdefault(run_id, []).append(folder)
    return found


def refuse_other_runs(output_dir: str | Path, own: set[RunId], overwrite: bool) -> None:
    """Raise :class:`OutputDirError` when ``output_dir`` holds checkpoints of runs not in ``own``
    (a new run owns none), unless ``overwrite``."""
    others = _others(output_dir, own)
    if not others or overwrite:
        return
    held = "; ".join(
        f"run {run_id or '(no id)'}: {', '.join(p.name for p in folders)}"
        for run_id, folders in others.items()
    )
    raise OutputDirError(
        f"output_dir {output_dir} holds checkpoints of another run ({held}). Pass "
        "resume_from_checkpoint=True to continue that run, or overwrite_output_dir=True to replace it (its "
        "checkpoints are removed when this run writes its first), or choose another output_dir"
    )


def remove_other_runs(output_dir: str | Path, own: set[RunId]) -> list[Path]:
    """Delete the checkpoints of runs not in ``own``; returns what was removed."""
    removed = [p for folders in _others(output_dir, own).values() for p in folders]
    for p in removed:
        shutil.rmtree(p, ignore_errors=True)
    return removed


def latest_run(checkpoints: Iterable[Path]) -> RunId:
    """The run of the checkpoint written last (by its manifest, written last), among those that name
    their run; ``None`` when none does."""
    newest: tuple[float, RunId] | None = None
    for folder in checkpoints:
        run_id = run_id_of(folder)
        try:
            written = (folder / MANIFEST).stat().st_mtime
        except OSError:
            continue
        if run_id is not None and (newest is None or written > newest[0]):
            newest = (written, run_id)
    return newest[1] if newest is not None else None


def inside(output_dir: str | Path, path: str) -> Path:
    """A path a checkpoint stored, in ``output_dir`` as it is now: a relative one is joined to it, an
    absolute one (written by an older release) is taken by its folder name."""
    return Path(output_dir) / (Path(path).name if Path(path).is_absolute() else path)
