"""Reads the records of a W&B run file (``run-*.wandb``): the wandb package itself ships no reader.

The file is a ``:W&B`` header (7 bytes) then LevelDB-style log blocks of 32 KiB; each chunk has a
7-byte header (crc32, length, kind: 1 full, 2 first, 3 middle, 4 last) and the chunks of a record
join into one ``wandb_internal_pb2.Record``.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

BLOCK = 32 * 1024
HEADER = 7


def records(path: Path) -> list[Any]:
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B run file"
    found, parts, pos = [], [], HEADER
    while pos + HEADER <= len(data):
        if BLOCK - pos % BLOCK < HEADER:  # a block's tail too short for a header is padding
            pos += BLOCK - pos % BLOCK
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + HEADER])
        if kind == 0:
            break
        parts.append(data[pos + HEADER : pos + HEADER + length])
        pos += HEADER + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(b"".join(parts))
            found.append(record)
            parts = []
    return found


def run_contents(path: Path) -> tuple[str, dict[str, Any], dict[tuple[str, int], Any]]:
    """The run's display name, its config, and ``(key, step) -> value`` of its history."""
    name, config, history = "", {}, {}
    for record in records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            name = record.run.display_name
            config.update({u.key: json.loads(u.value_json) for u in record.run.config.update})
        elif kind == "config":
            config.update({u.key: json.loads(u.value_json) for u in record.config.update})
        elif kind == "history":
            items = {"/".join(i.nested_key) or i.key: json.loads(i.value_json) for i in record.history.item}
            step = items.pop("_step")
            history.update({(k, step): v for k, v in items.items() if not k.startswith("_")})
    return name, config, history


def run_id(path: Path) -> str:
    """The id of the run a run file belongs to."""
    return next(r.run.run_id for r in records(path) if r.WhichOneof("record_type") == "run")
