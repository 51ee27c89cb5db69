"""Checkpoints: atomic, verified, pickle-free folders from which a run resumes exactly.

=====================  ===================================================================
``folder``             the ``checkpoint-<step>`` folder: atomic write, manifest, verify, rotate
``contents``           the files in it (weights, optimizer, resume state, ...) written and read
``tree``               a state dict as safetensors + JSON, read back without an unpickler
``legacy``             checkpoints of earlier releases, whose state dicts are pickles
``training``           a trainer's run saved into one and loaded from one (imports torch)
``fsdp``               an FSDP2 model and optimizer in one: gathered, or as shards through DCP (torch)
``ownership``          one run per ``output_dir``: run ids, the checks before a run, stored paths
``lock``               the lock a live trainer holds on its ``output_dir``
``world``              a checkpoint resumed on another number of ranks than wrote it
=====================  ===================================================================

The folder's functions are re-exported here; none of this package's imports loads torch.
"""

from lifecycle.checkpoint.folder import (
    MANIFEST,
    PREFIX,
    SHARDS_DIR,
    STATE_FILE,
    WEIGHTS_FILE,
    CheckpointError,
    check_files,
    list_checkpoints,
    newest_valid_checkpoint,
    rotate_checkpoints,
    verify_checkpoint,
    write_checkpoint,
)

__all__ = [
    "MANIFEST",
    "PREFIX",
    "SHARDS_DIR",
    "STATE_FILE",
    "WEIGHTS_FILE",
    "CheckpointError",
    "check_files",
    "list_checkpoints",
    "newest_valid_checkpoint",
    "rotate_checkpoints",
    "verify_checkpoint",
    "write_checkpoint",
]
