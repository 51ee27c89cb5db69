"""Checkpoints written by earlier releases, whose optimizer, scheduler, scaler and loader states are
pickles (``*.pt``): refused when resuming, converted on request.

Resuming never unpickles. :func:`upgrade_checkpoint` (``lifecycle upgrade PATH``) is the explicit
step that does, once, with ``torch.load(weights_only=True)``: it rewrites each ``.pt`` file as
``.safetensors`` + ``.json``, atomically, like every checkpoint write. Run it only on checkpoints
you trust.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from lifecycle.checkpoint.folder import CheckpointError, replace_checkpoint, verify_checkpoint
from lifecycle.checkpoint.tree import save_tree

__all__ = ["PICKLED", "pickled_files", "refuse_pickled", "upgrade_checkpoint"]

PICKLED = ".pt"


def pickled_files(names: list[str]) -> list[str]:
    """The pickled files among a checkpoint's file names."""
    return [name for name in names if name.endswith(PICKLED)]


def refuse_pickled(folder: Path, name: str) -> None:
    """Raise, with what to do, when ``name`` is saved as a pickle in ``folder``."""
    path = folder / f"{name}{PICKLED}"
    if path.is_file():
        raise CheckpointError(
            f"{path}: a pickle, written by an earlier release; it is not read when resuming. If you "
            f"trust this checkpoint, convert it once with `lifecycle upgrade {folder}`"
        )


def upgrade_checkpoint(path: str | Path) -> list[str]:
    """Rewrite the pickled files of the checkpoint at ``path`` as safetensors + JSON; returns the
    names converted (none: nothing to do). The checkpoint must verify first."""
    import torch

    folder = Path(path)
    manifest = verify_checkpoint(folder)
    names = sorted(manifest["files"])
    pickled = pickled_files(names)
    if not pickled:
        return []

    def fill(into: Path) -> None:
        for name in names:
            if name in pickled:
                try:
                    state = torch.load(folder / name, weights_only=True, map_location="cpu")
                except Exception as exc:
                    raise CheckpointError(f"{folder / name}: cannot be read ({exc})") from None
                save_tree(into, name.removesuffix(PICKLED), state)
            else:
                shutil.copy2(folder / name, into / name)

    replace_checkpoint(folder, int(manifest.get("step", 0)), fill)
    return pickled
