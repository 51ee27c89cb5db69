"""TrainerState: plain attrs data, serialized to JSON with cattrs, including where the machine stood.

The fields are Hugging Face's, plus :class:`Position` — the lifecycle state and the loop counters
the guards read — so that a saved state says exactly where training stopped.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs
import cattrs

__all__ = ["SCHEMA_VERSION", "Position", "TrainerState", "converter"]

SCHEMA_VERSION = "1.0"

LogEntry = dict[str, Any]


@attrs.define
class Position:
    """Where training stands in its loops. Guards of the default lifecycle read these counters."""

    lifecycle_state: str = "init"
    training: bool = False
    epoch_index: int = 0
    epoch_open: bool = False
    batch_index: int = 0
    batches_in_epoch: int = 0
    window_end: int = 0
    logged_step: int = 0
    saved_step: int = 0


@attrs.define
class TrainerState:
    """Training progress as seen by every callback (Hugging Face's fields, same meanings)."""

    epoch: float | None = None
    global_step: int = 0
    max_steps: int = 0
    logging_steps: int = 500
    eval_steps: int = 500
    save_steps: int = 500
    train_batch_size: int | None = None
    num_train_epochs: int = 0
    num_input_tokens_seen: int = 0
    total_flos: float = 0.0
    log_history: list[LogEntry] = attrs.field(factory=list)
    best_metric: float | None = None
    best_global_step: int | None = None
    best_model_checkpoint: str | None = None
    is_local_process_zero: bool = True
    is_world_process_zero: bool = True
    is_hyper_param_search: bool = False
    trial_name: str | None = None
    trial_params: dict[str, Any] | None = None
    stateful_callbacks: dict[str, Any] = attrs.field(factory=dict)
    position: Position = attrs.field(factory=Position)

    def to_dict(self) -> dict[str, Any]:
        return {"schema_version": SCHEMA_VERSION, **converter.unstructure(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainerState:
        body = {k: v for k, v in data.items() if k != "schema_version"}
        return converter.structure(body, cls)

    def save_to_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")

    @classmethod
    def load_from_json(cls, path: str | Path) -> TrainerState:
        return cls.from_dict(json.loads(Path(path).read_text()))


converter = cattrs.Converter(forbid_extra_keys=False)
