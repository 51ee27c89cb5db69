"""``lifecycle upgrade PATH...``: rewrite checkpoints of an earlier release without pickles.

Each ``.pt`` file is read once with ``torch.load(weights_only=True)`` and written as ``.safetensors`` +
``.json``; the folder is replaced atomically. Exit status 0 when every checkpoint is (now) pickle-free,
1 when one could not be converted (named, with the reason).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TextIO

from lifecycle.checkpoint.folder import CheckpointError
from lifecycle.checkpoint.legacy import upgrade_checkpoint

__all__ = ["upgrade_command"]


def upgrade_command(paths: Sequence[str], out: TextIO | None = None) -> int:
    out = out or sys.stdout
    status = 0
    for path in paths:
        try:
            converted = upgrade_checkpoint(path)
        except CheckpointError as exc:
            print(f"not upgraded   {exc}", file=out)
            status = 1
            continue
        done = f"converted {', '.join(converted)}" if converted else "nothing to convert"
        print(f"{path}: {done}", file=out)
    return status
