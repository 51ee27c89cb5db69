"""The checkpoint folder: written whole or not at all, verified by checksum when read, rotated.

``checkpoint-<step>/`` is assembled in a hidden temporary folder, its ``manifest.json`` listing the
size and sha256 of every other file, fsynced, then renamed into place, so a crash mid-save leaves the
previous checkpoint the newest valid one. What the files hold is :mod:`lifecycle.checkpoint.contents`'s
business. No torch here: ``lifecycle inspect`` verifies checkpoints without it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = [
    "MANIFEST",
    "PREFIX",
    "SHARDS_DIR",
    "STATE_FILE",
    "WEIGHTS_FILE",
    "CheckpointError",
    "check_files",
    "file_entry",
    "first_line",
    "has_shards",
    "list_checkpoints",
    "newest_valid_checkpoint",
    "replace_checkpoint",
    "rotate_checkpoints",
    "seal_checkpoint",
    "stage_checkpoint",
    "verify_checkpoint",
    "write_checkpoint",
]

PREFIX = "checkpoint-"
MANIFEST = "manifest.json"
STATE_FILE = "trainer_state.json"
WEIGHTS_FILE = "model.safetensors"
SHARDS_DIR = "shards"
"""The folder of the model's and optimizer's shards in an FSDP checkpoint (``SHARDED_STATE_DICT``)."""
_STEP = re.compile(rf"^{PREFIX}(\d+)$")


class CheckpointError(RuntimeError):
    """A checkpoint that is incomplete, damaged or unsafe; the message names the file."""


def first_line(exc: BaseException) -> str:
    """The first line of an error's message (its type's name when it has none), for a message of ours."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def has_shards(path: Path) -> bool:
    """Whether the checkpoint at ``path`` holds an FSDP model's shards (``SHARDED_STATE_DICT``)."""
    return (path / SHARDS_DIR).is_dir()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_checkpoint(output_dir: str | Path, step: int, write_files: Callable[[Path], None]) -> Path:
    """Create ``output_dir/checkpoint-<step>`` atomically; ``write_files(folder)`` fills it."""
    root = Path(output_dir)
    root.mkdir(parents=True, exist_ok=True)
    return replace_checkpoint(root / f"{PREFIX}{step}", step, write_files)


def replace_checkpoint(final: Path, step: int, write_files: Callable[[Path], None]) -> Path:
    """Write the checkpoint folder ``final`` of ``step`` whole, in place of any folder of that name."""
    tmp = stage_checkpoint(final)
    try:
        write_files(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return seal_checkpoint(tmp, final, step)


def stage_checkpoint(final: Path) -> Path:
    """The hidden temporary folder in which ``final`` is assembled (what interrupted saves left is
    tidied away first); :func:`seal_checkpoint` puts it in place."""
    _tidy(final.parent)
    tmp = final.parent / f".{final.name}.tmp-{os.getpid()}"
    tmp.mkdir()
    return tmp


def file_entry(path: Path) -> dict[str, Any]:
    """A file's manifest entry: its size and sha256."""
    return {"size": path.stat().st_size, "sha256": _sha256(path)}


def _files(tmp: Path) -> list[Path]:
    """The files of a checkpoint folder, those in its ``shards`` folder included."""
    shards = tmp / SHARDS_DIR
    inner = sorted(shards.iterdir()) if shards.is_dir() else []
    return sorted(p for p in (*tmp.iterdir(), *inner) if p.is_file() and p.name != MANIFEST)


def seal_checkpoint(
    tmp: Path, final: Path, step: int, known: dict[str, dict[str, Any]] | None = None
) -> Path:
    """Write the manifest of the staged folder ``tmp`` (``known``: entries already computed, by name),
    fsync it all and rename it to ``final``, in place of any folder of that name."""
    root, known = final.parent, known or {}
    files = {p.relative_to(tmp).as_posix(): p for p in _files(tmp)}
    manifest = {
        "format": 1,
        "step": step,
        "files": {name: known[name] if name in known else file_entry(p) for name, p in files.items()},
    }
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    for p in (*files.values(), tmp / MANIFEST):
        _fsync(p)
    if has_shards(tmp):
        _fsync(tmp / SHARDS_DIR)
    _fsync(tmp)
    if final.exists():  # the same step saved again: keep the old one until the new one is in place
        old = root / f".{final.name}.old-{os.getpid()}"
        final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(final)
    _fsync(root)
    return final


def check_files(path: str | Path) -> tuple[dict[str, Any], dict[str, str | None]]:
    """The manifest and, for each file it lists, ``None`` when intact or what is wrong with it.

    Raises :class:`CheckpointError` when there is no usable manifest at all."""
    folder = Path(path)
    manifest_path = folder / MANIFEST
    if not folder.is_dir():
        raise CheckpointError(f"{folder}: not a checkpoint folder")
    if not manifest_path.is_file():
        raise CheckpointError(f"{manifest_path}: missing (the checkpoint is incomplete)")
    try:
        manifest = json.loads(manifest_path.read_text())
        files = manifest["files"]
        expected = {name: (int(entry["size"]), str(entry["sha256"])) for name, entry in files.items()}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CheckpointError(f"{manifest_path}: unreadable manifest ({type(exc).__name__}: {exc})") from None
    if STATE_FILE not in expected:
        raise CheckpointError(f"{manifest_path}: does not list {STATE_FILE} (the checkpoint is incomplete)")
    if WEIGHTS_FILE not in expected and not any(_in_shards(name) for name in expected):
        raise CheckpointError(
            f"{manifest_path}: lists neither {WEIGHTS_FILE} nor {SHARDS_DIR}/ (the checkpoint is incomplete)"
        )
    report: dict[str, str | None] = {}
    for name, (size, sha256) in sorted(expected.items()):
        file = folder / name
        if not (_plain(name) or _in_shards(name)):
            report[name] = "not a plain file name"
        elif not file.is_file():
            report[name] = "missing"
        elif file.stat().st_size != size:
            report[name] = f"size {file.stat().st_size}, manifest says {size}"
        elif _sha256(file) != sha256:
            report[name] = "sha256 does not match the manifest (damaged)"
        else:
            report[name] = None
    return manifest, report


def _plain(name: str) -> bool:
    return Path(name).name == name and name not in (".", "..")


def _in_shards(name: str) -> bool:
    """``shards/<plain file name>``: the one folder a checkpoint may hold."""
    folder, _, rest = name.partition("/")
    return folder == SHARDS_DIR and _plain(rest)


def _tidy(root: Path) -> None:
    """Undo what an interrupted save left behind: drop partial folders, put a displaced one back."""
    for stale in root.glob(f".{PREFIX}*.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    for old in root.glob(f".{PREFIX}*.old-*"):
        original = root / old.name[1:].split(".old-")[0]
        if original.exists():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.rename(original)


def verify_checkpoint(path: str | Path) -> dict[str, Any]:
    """The manifest of a complete, undamaged checkpoint; :class:`CheckpointError` names what is wrong."""
    manifest, report = check_files(path)
    for name, problem in report.items():
        if problem is not None:
            raise CheckpointError(f"{Path(path) / name}: {problem}")
    return manifest


def list_checkpoints(output_dir: str | Path) -> list[Path]:
    """``checkpoint-<step>`` folders in ``output_dir``, oldest step first."""
    root = Path(output_dir)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := _STEP.match(p.name)) and p.is_dir()]
    return [p for _, p in sorted(found)]


def newest_valid_checkpoint(
    output_dir: str | Path, warn: Callable[[str], None], belongs: Callable[[Path], bool] | None = None
) -> Path | None:
    """The newest checkpoint that verifies (of those that ``belongs`` accepts, when given); each
    damaged one skipped on the way is reported."""
    if Path(output_dir).is_dir():
        _tidy(Path(output_dir))
    for folder in reversed(list_checkpoints(output_dir)):
        if belongs is not None and not belongs(folder):
            continue
        try:
            verify_checkpoint(folder)
        except CheckpointError as exc:
            warn(f"skipping damaged checkpoint: {exc}")
            continue
        return folder
    return None


def rotate_checkpoints(
    output_dir: str | Path,
    limit: int | None,
    keep: set[Path],
    belongs: Callable[[Path], bool] | None = None,
) -> list[Path]:
    """Delete the oldest checkpoints beyond ``limit``, never one in ``keep``; returns what was removed.
    With ``belongs``, only the checkpoints it accepts (one run's) are counted and deleted."""
    if limit is None:
        return []
    folders = [p for p in list_checkpoints(output_dir) if belongs is None or belongs(p)]
    kept = {p.resolve() for p in keep}
    removable = [p for p in folders if p.resolve() not in kept]
    excess = len(folders) - limit
    removed = removable[: max(0, excess)]
    for p in removed:
        shutil.rmtree(p, ignore_errors=True)
    return removed
