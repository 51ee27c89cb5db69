"""Reads a SwanLab run file (``run-<id>.swanlab``) with SwanLab's own record reader."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def run_contents(path: Path) -> tuple[str, str, dict[tuple[str, int], float]]:
    """The run's id, its name, and ``(key, step) -> value`` of its scalars."""
    from swanlab.proto.swanlab.record.v1 import record_pb2
    from swanlab.sdk.internal.core_python.store import DataStoreReader

    reader = DataStoreReader()
    reader.open(path)
    run_id, name, scalars = "", "", {}
    try:
        for raw in reader:
            record: Any = record_pb2.Record()
            record.ParseFromString(raw)
            if record.HasField("start"):
                run_id, name = record.start.id, record.start.name
            elif record.HasField("scalar"):
                scalars[(record.scalar.key, record.scalar.step)] = record.scalar.value.number
    finally:
        reader.close()
    return run_id, name, scalars
