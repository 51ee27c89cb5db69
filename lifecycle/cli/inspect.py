"""``lifecycle inspect PATH``: what a checkpoint holds and whether every file is intact, without torch.

Exit status 0 for an intact checkpoint, 1 for a damaged or incomplete one (each bad file is named),
2 for a folder that is not a checkpoint at all.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, TextIO

from lifecycle.checkpoint import STATE_FILE, CheckpointError, check_files
from lifecycle.checkpoint.contents import DATALOADER, RESUME_FILE, ranks_written, read_resume
from lifecycle.checkpoint.legacy import pickled_files
from lifecycle.checkpoint.tree import json_file
from lifecycle.state import StateFileError, TrainerState

__all__ = ["inspect_command"]


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def _state_lines(state: TrainerState) -> list[str]:
    p = state.position
    best = (
        "none" if state.best_metric is None else f"{state.best_metric:.6g} at step {state.best_global_step}"
    )
    where = f"batch {p.batch_index} of {p.batches_in_epoch}" if p.epoch_open else "between epochs"
    lines = [
        f"step           {state.global_step} of {state.max_steps}",
        f"epoch          {state.epoch if state.epoch is not None else 'n/a'}",
        f"best metric    {best}",
        f"best model     {state.best_model_checkpoint or 'none'}",
        f"position       state {p.lifecycle_state!r}, epoch index {p.epoch_index}, {where}",
        f"               last log at step {p.logged_step}, last save at step {p.saved_step}",
        f"log entries    {len(state.log_history)}",
    ]
    if state.stateful_callbacks:
        lines.append("callbacks")
        for name, states in state.stateful_callbacks.items():
            for entry in states if isinstance(states, list) else [states]:
                lines.append(f"  {name}: {json.dumps(entry, sort_keys=True)}")
    return lines


def _resume_lines(folder: Path) -> list[str]:
    resume = read_resume(folder)
    raised = [flag for flag, value in sorted(resume.control.items()) if value]
    rng = ["python", "torch"] + (["numpy"] if resume.rng.numpy is not None else [])
    rng += [f"{len(resume.rng.cuda)} CUDA"] if resume.rng.cuda else []
    grad = "n/a" if resume.loss.grad_norm is None else f"{resume.loss.grad_norm:.6g}"
    ranks = ranks_written(folder)
    if (folder / json_file(DATALOADER)).is_file() or (folder / f"{DATALOADER}.pt").is_file():
        data = f"restored from the loader's own state ({DATALOADER}.*)"
    elif resume.epoch_rng is not None:
        data = "replayed: the epoch's order drawn again, the batches trained on read and dropped"
    else:
        data = "the epoch's order sliced (EpochSampler): nothing skipped is read"
    if resume.passes:
        data += f"; {resume.passes} passes over the data done"
    return [
        f"loss carried   {resume.loss.total:.6g} since the last log (grad norm {grad}, "
        f"learning rate {resume.loss.learning_rate:.6g})" + (" on rank 0" if ranks > 1 else ""),
        f"flags raised   {', '.join(raised) or 'none'}",
        f"random states  {', '.join(rng)}" + (f", for each of {ranks} ranks" if ranks > 1 else ""),
        f"data position  {data}",
    ]


def inspect_command(path: str, out: TextIO | None = None) -> int:
    """Print a checkpoint's summary and file integrity; the exit status says whether it is intact."""
    out = out or sys.stdout
    folder = Path(path)
    try:
        manifest, report = check_files(folder)
    except CheckpointError as exc:
        print(f"not a usable checkpoint: {exc}", file=out)
        return 2 if not (folder / STATE_FILE).exists() else 1
    print(f"checkpoint     {folder}", file=out)
    bad = [name for name, problem in report.items() if problem is not None]
    lines: list[str] = []
    if STATE_FILE not in bad:
        try:
            lines += _state_lines(TrainerState.load_from_json(folder / STATE_FILE, checkpoint=True))
        except StateFileError as exc:
            lines.append(f"unreadable     {exc}")
            bad.append(STATE_FILE)
    if RESUME_FILE not in bad:
        try:
            lines += _resume_lines(folder)
        except CheckpointError as exc:
            lines.append(f"unreadable     {exc}")
            bad.append(RESUME_FILE)
    pickled = pickled_files(list(report))
    if pickled:
        lines.append(
            f"pickled files  {', '.join(pickled)}: written by an earlier release, not read when resuming "
            f"(convert them with `lifecycle upgrade {folder}` if you trust this checkpoint)"
        )
    for line in lines:
        print(line, file=out)
    print("files", file=out)
    files: dict[str, Any] = manifest["files"]
    for name, problem in report.items():
        size = _size(int(files[name]["size"]))
        print(
            f"  {'ok ' if problem is None else 'BAD'} {name:<22} {size:>10}  {problem or ''}".rstrip(),
            file=out,
        )
    if bad:
        print(f"integrity      DAMAGED: {', '.join(sorted(set(bad)))}", file=out)
        return 1
    print("integrity      ok", file=out)
    return 0
