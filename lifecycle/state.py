"""TrainerState: plain attrs data, serialized to JSON with cattrs, including where the machine stood.

The fields are Hugging Face's, plus :class:`Position` — the lifecycle state and the loop counters
the guards read — so that a saved state says exactly where training stopped.

The file carries ``schema_version`` (``major.minor``). A field this release does not know is kept,
written back unchanged and reported; a newer *major* version is refused.

A missing field takes its default when a state file is simply read, so that Hugging Face's
``trainer_state.json`` loads. A checkpoint's state file (``checkpoint=True``) must have every field,
``position`` and each of its fields included: a resume from defaults would go on from the wrong place.
Only the fields added after the first release (:data:`ADDED_LATER`) may be missing there; they default.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

__all__ = ["ADDED_LATER", "SCHEMA_VERSION", "Position", "StateFileError", "TrainerState", "converter"]

logger = logging.getLogger(__name__)

SCHEMA_VERSION = "1.3"
"""Bump the minor version for added fields (older readers keep them), the major one for changed meanings."""

ADDED_LATER = frozenset({"run_id", "position.evaluated_step", "position.evaluations_left", "position.fired"})
"""Fields a checkpoint written by an earlier release lacks; they take their defaults."""

LogEntry = dict[str, Any]


class StateFileError(ValueError):
    """A state file that cannot be read; the message names the file and the field."""


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
    evaluated_step: int = -1
    evaluations_left: int = 0
    """Evaluation datasets still to go in the evaluation under way (``eval_dataset`` as a dict)."""
    fired: dict[str, int] = attrs.field(factory=dict)
    """How often each transition had fired when the checkpoint was taken, counting the exit out of
    ``save`` that follows it: a resumed run goes on counting from there, so ``@on(every=N, once=N)``
    handlers fire at the steps they fire at in the uninterrupted run."""
    unknown: dict[str, Any] = attrs.field(factory=dict, eq=False, repr=False)
    """Fields written by a newer release, kept so that saving again loses nothing."""


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
    """The best checkpoint's folder, relative to ``output_dir`` (``checkpoint-120``)."""
    is_local_process_zero: bool = True
    is_world_process_zero: bool = True
    is_hyper_param_search: bool = False
    trial_name: str | None = None
    trial_params: dict[str, Any] | None = None
    stateful_callbacks: dict[str, Any] = attrs.field(factory=dict)
    position: Position = attrs.field(factory=Position)
    run_id: str | None = None
    """The run's id (uuid4 hex), made when a new run begins and kept across resumes: the checkpoints
    of an ``output_dir`` that carry it are this run's (``None``: written before runs had ids)."""
    unknown: dict[str, Any] = attrs.field(factory=dict, eq=False, repr=False)
    """Fields written by a newer release, kept so that saving again loses nothing."""

    def to_dict(self) -> dict[str, Any]:
        return {"schema_version": SCHEMA_VERSION, **converter.unstructure(self)}

    @classmethod
    def from_dict(
        cls, data: dict[str, Any], source: str = "trainer state", checkpoint: bool = False
    ) -> TrainerState:
        """Structure ``data``; ``source`` (a file name) prefixes every error and warning. With
        ``checkpoint``, a missing field (but those :data:`ADDED_LATER`) is an error naming it."""
        if not isinstance(data, dict):
            raise StateFileError(f"{source}: expected a JSON object, got {type(data).__name__}")
        body = dict(data)
        _check_version(body.pop("schema_version", "1.0"), source)
        if checkpoint:
            _check_complete(body, source)
        try:
            state = converter.structure(body, cls)
        except Exception as exc:
            problems = "; ".join(cattrs.transform_error(exc, path="$"))
            raise StateFileError(f"{source}: {problems}") from None
        for where, extra in (("$", state.unknown), ("$.position", state.position.unknown)):
            if extra:
                logger.warning(
                    "%s: fields %s at %s are unknown to this release (schema %s); they are kept as they are",
                    source,
                    ", ".join(sorted(extra)),
                    where,
                    SCHEMA_VERSION,
                )
        return state

    def save_to_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")

    @classmethod
    def load_from_json(cls, path: str | Path, checkpoint: bool = False) -> TrainerState:
        """The state in ``path``; ``checkpoint``: a checkpoint's, with every field (see the module)."""
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, UnicodeDecodeError) as exc:
            raise StateFileError(f"{path}: cannot be read ({exc})") from None
        except json.JSONDecodeError as exc:
            raise StateFileError(f"{path}: not valid JSON ({exc})") from None
        return cls.from_dict(data, source=str(path), checkpoint=checkpoint)


def _check_complete(body: dict[str, Any], source: str) -> None:
    """Refuse a checkpoint's state that lacks a field: it would resume from the field's default."""
    missing = [
        a.name
        for a in attrs.fields(TrainerState)
        if a.name != "unknown" and a.name not in body and a.name not in ADDED_LATER
    ]
    position = body.get("position")
    if isinstance(position, dict):
        missing += [
            f"position.{a.name}"
            for a in attrs.fields(Position)
            if a.name != "unknown" and a.name not in position and f"position.{a.name}" not in ADDED_LATER
        ]
    if missing:
        raise StateFileError(
            f"{source}: {', '.join(missing)} missing; a checkpoint's state file has every field "
            "(resuming from defaults would go on from the wrong place)"
        )


def _check_version(version: Any, source: str) -> None:
    reads = f"this release reads schema versions {SCHEMA_VERSION.split('.')[0]}.x (writes {SCHEMA_VERSION})"
    try:
        major = int(str(version).split(".")[0])
    except ValueError:
        raise StateFileError(f"{source}: schema_version {version!r} is not 'major.minor'; {reads}") from None
    if major > int(SCHEMA_VERSION.split(".")[0]):
        raise StateFileError(f"{source}: schema_version {version} is newer than this release; {reads}")


def _keeping_unknown(conv: cattrs.Converter, cls: type) -> None:
    """Register hooks for ``cls``: keys without a field go to ``unknown`` and come back out of it."""
    known = {a.name for a in attrs.fields(cls)} - {"unknown"}
    omit = override(omit=True)
    structure: Callable[[Any, Any], Any] = make_dict_structure_fn(cls, conv, unknown=omit)
    unstructure: Callable[[Any], dict[str, Any]] = make_dict_unstructure_fn(cls, conv, unknown=omit)

    def structure_hook(data: Any, _: type) -> Any:
        if not isinstance(data, dict):
            raise TypeError(f"expected a JSON object, got {type(data).__name__}")
        obj = structure({k: v for k, v in data.items() if k in known}, cls)
        obj.unknown = {k: v for k, v in data.items() if k not in known}
        return obj

    def unstructure_hook(obj: Any) -> dict[str, Any]:
        return {**obj.unknown, **unstructure(obj)}

    conv.register_structure_hook(cls, structure_hook)
    conv.register_unstructure_hook(cls, unstructure_hook)


converter = cattrs.Converter(forbid_extra_keys=False)
_keeping_unknown(converter, Position)
_keeping_unknown(converter, TrainerState)
