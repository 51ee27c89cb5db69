"""The files of a checkpoint as written on disk: state dicts as safetensors + JSON round-trip exactly,
and a crafted, damaged or missing file is an error naming it, quickly, without unpickling anything."""

from __future__ import annotations

import functools
import io
import json
import math
import re
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from torchdata.stateful_dataloader import StatefulDataLoader

from lifecycle.checkpoint import CheckpointError, verify_checkpoint
from lifecycle.checkpoint import tree as tree_module
from lifecycle.checkpoint.contents import load_state_dicts
from lifecycle.checkpoint.tree import MAX_DEPTH, load_tree, save_tree
from lifecycle.cli import main
from lifecycle.cli.inspect import inspect_command
from lifecycle.state import StateFileError
from tests.test_checkpoint import copy_run, reseal, small_trainer


def same(a: Any, b: Any) -> bool:
    """Equal, with the same types all the way down (a tuple is not a list, 1.0 is not 1)."""
    if isinstance(a, torch.Tensor):
        return type(b) is torch.Tensor and a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(map(same, a, b))
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return bool(a == b)


def round_trip(folder: Path, obj: Any) -> Any:
    save_tree(folder, "part", obj)
    return load_tree(folder, "part")


def _decay(step: int, warmup: int) -> float:
    return min(1.0, (step + 1) / warmup)


def trained_parts() -> list[Any]:
    """Optimizers, schedulers and a scaler that have taken steps, so that their states hold tensors."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 1))
    adamw = torch.optim.AdamW(
        [{"params": model[0].parameters()}, {"params": model[1].parameters(), "lr": 0.01}], lr=0.1
    )
    sgd = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    lambda_lr = torch.optim.lr_scheduler.LambdaLR(adamw, functools.partial(_decay, warmup=3))
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(sgd)  # holds inf
    for _ in range(2):
        model(torch.randn(5, 3)).sum().backward()
        adamw.step(), sgd.step(), lambda_lr.step()
    return [adamw, sgd, lambda_lr, plateau, torch.amp.GradScaler("cpu")]


@pytest.mark.parametrize(
    "index", range(5), ids=["AdamW", "SGD", "LambdaLR", "ReduceLROnPlateau", "GradScaler"]
)
def test_state_dicts_round_trip_exactly(tmp_path: Path, index: int) -> None:
    part = trained_parts()[index]
    state = part.state_dict()
    back = round_trip(tmp_path, state)
    assert same(state, back)
    fresh = trained_parts()[index]  # the same kind of object, loaded through its own method
    load_state_dicts(tmp_path, {"part": fresh})
    assert same(fresh.state_dict(), state)


def test_lambda_lr_keeps_what_torch_saves_of_its_lambdas(tmp_path: Path) -> None:
    """LambdaLR saves the ``__dict__`` of each lambda that is not a plain function (``{}`` for a
    ``functools.partial``, as transformers' schedules are) and ``None`` for a plain function."""
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, [lambda s: 1.0])
    assert round_trip(tmp_path, scheduler.state_dict())["lr_lambdas"] == [None]


def test_a_stateful_loader_state_round_trips(tmp_path: Path) -> None:
    loader = StatefulDataLoader(list(range(20)), batch_size=3, shuffle=True)
    batches = iter(loader)
    next(batches), next(batches)
    state = loader.state_dict()
    assert same(state, round_trip(tmp_path, state))
    again = StatefulDataLoader(list(range(20)), batch_size=3, shuffle=True)
    again.load_state_dict(load_tree(tmp_path, "part"))
    assert [b.tolist() for b in again] == [b.tolist() for b in batches]


def test_odd_trees_round_trip(tmp_path: Path) -> None:
    base = torch.arange(6.0)
    tree = {
        "views": [base, base[1:], base.view(2, 3).t(), torch.empty(0), torch.empty(0, 3)],
        "dtypes": [torch.ones(2, dtype=dtype) for dtype in (torch.bfloat16, torch.int64, torch.bool)],
        (1, "x"): {"__tensor__": 3, "plain": -0.0},
        None: [float("nan"), float("inf"), -math.inf, 10**30, 1.0, 1, True, "ü"],
        2.5: (("nested", ()), []),
    }
    assert same(tree, round_trip(tmp_path, tree))


def test_what_cannot_be_saved_is_named(tmp_path: Path) -> None:
    with pytest.raises(
        CheckpointError, match=r"part\.json: a builtins\.function cannot be saved .* at \$\['a'\]\[1\]"
    ):
        save_tree(tmp_path, "part", {"a": [1, _decay]})
    with pytest.raises(CheckpointError, match=r"part\.json: nested deeper than 100"):
        deep: list[Any] = []
        for _ in range(MAX_DEPTH + 1):
            deep = [deep]
        save_tree(tmp_path, "part", deep)


# -- crafted and damaged files ----------------------------------------------------------------
def write_json(folder: Path, tree: Any, raw: str | None = None) -> None:
    save_tree(folder, "part", {"t": torch.ones(2)})
    text = raw if raw is not None else json.dumps({"format": 1, "tree": tree})
    (folder / "part.json").write_text(text)


def quickly_refused(folder: Path, pattern: str) -> None:
    start = time.perf_counter()
    with pytest.raises(CheckpointError, match=pattern):
        load_tree(folder, "part")
    assert time.perf_counter() - start < 2.0


@pytest.mark.parametrize(
    ("raw", "pattern"),
    [
        ("[" * 200_000 + "]" * 200_000, r"part\.json: nested deeper than 100 levels"),
        (
            '{"format": 1, "tree": ' + "[" * 150 + "]" * 150 + "}",
            r"part\.json: nested deeper than 100 .* at \$\[0\]\[0\]",
        ),
        ('{"format": 1, "tree": [1, 2', r"part\.json: not valid JSON"),
        ('{"format": 1, "tree": ' + "9" * 5000 + "}", r"part\.json: not valid JSON"),
        ('{"tree": []}', r'part\.json: expected \{"format": 1, "tree": \.\.\.\}'),
        ('{"format": 7, "tree": []}', r"part\.json: format 7 is newer than this release"),
        (
            '{"format": 1, "tree": {"t": {"__tensor__": "9"}}}',
            r"part\.json: tensor '9' is not in .* at \$\['t'\]",
        ),
        ('{"format": 1, "tree": {"t": {"__tensor__": "0"}, "__tuple__": []}}', r"must be the only key"),
        ('{"format": 1, "tree": {"__dict__": [[[1], 2]]}}', r"a list cannot be a dict key"),
        ('{"format": 1, "tree": {"__float__": "1e999"}}', r"__float__ must be one of"),
        (
            '{"format": 1, "tree": {}}',
            r"part\.safetensors: holds tensors part\.json does not refer to: \['0'\]",
        ),
    ],
    ids=[
        "deep-bomb",
        "depth-101",
        "truncated",
        "huge-int",
        "no-format",
        "newer-format",
        "dangling-tensor",
        "marker-with-others",
        "unhashable-key",
        "bad-float",
        "unreferenced-tensor",
    ],
)
def test_a_crafted_structure_file_is_refused_quickly(tmp_path: Path, raw: str, pattern: str) -> None:
    write_json(tmp_path, None, raw)
    quickly_refused(tmp_path, pattern)


def test_a_nested_list_bomb_costs_no_more_than_its_size(tmp_path: Path) -> None:
    """The pickle bomb's shape, as JSON: a few KiB of lists is a few KiB of lists (JSON has no
    references that could multiply it); at its size limit the file is refused before it is read."""
    bomb = "[" * 50 + ",".join(["[[],[],[],[]]"] * 300) + "]" * 50
    write_json(tmp_path, None, '{"format": 1, "tree": {"t": {"__tensor__": "0"}, "b": ' + bomb + "}}")
    assert len(load_tree(tmp_path, "part")["b"][0]) == 1
    tree_module.MAX_JSON_BYTES, limit = 1000, tree_module.MAX_JSON_BYTES
    try:
        quickly_refused(tmp_path, r"part\.json: \d+ bytes, more than the 1000 a state file may have")
    finally:
        tree_module.MAX_JSON_BYTES = limit


@pytest.mark.parametrize("content", [b"", b"\xff" * 8 + b"{}", b"garbage that is no header"])
def test_a_malformed_safetensors_file_is_named(tmp_path: Path, content: bytes) -> None:
    write_json(tmp_path, {"t": {"__tensor__": "0"}})
    (tmp_path / "part.safetensors").write_bytes(content)
    quickly_refused(tmp_path, r"part\.safetensors: not a readable safetensors file \(")


@pytest.mark.parametrize("missing", ["part.json", "part.safetensors"])
def test_a_missing_half_is_named(tmp_path: Path, missing: str) -> None:
    write_json(tmp_path, {"t": {"__tensor__": "0"}})
    (tmp_path / missing).unlink()
    quickly_refused(tmp_path, rf"{re.escape(missing)}: missing")


def test_a_state_that_does_not_fit_names_the_file_and_the_object(tmp_path: Path) -> None:
    optimizer = trained_parts()[0]
    save_tree(tmp_path, "optimizer", {"state": {}, "param_groups": [{"params": [0]}]})
    with pytest.raises(CheckpointError, match=r"optimizer\.json: does not fit this AdamW \(ValueError: "):
        load_state_dicts(tmp_path, {"optimizer": optimizer})
    save_tree(
        tmp_path, "optimizer", {"state": [1, 2], "param_groups": optimizer.state_dict()["param_groups"]}
    )
    with pytest.raises(CheckpointError, match=r"optimizer\.json: does not fit this AdamW"):
        load_state_dicts(tmp_path, {"optimizer": optimizer})


# -- a run's checkpoint on disk ---------------------------------------------------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished run with checkpoints at steps 2, 4, 6 and 8."""
    out = tmp_path_factory.mktemp("trained")
    small_trainer(out).train()
    return out


def final_weights(out: Path, checkpoint: Path) -> dict[str, torch.Tensor]:
    t = small_trainer(out)
    t.train(resume_from_checkpoint=checkpoint)
    return {k: v.clone() for k, v in t.model.state_dict().items()}


def test_a_checkpoint_holds_no_pickle(trained: Path) -> None:
    folder = trained / "checkpoint-4"
    names = sorted(json.loads((folder / "manifest.json").read_text())["files"])
    assert not [n for n in names if n.endswith((".pt", ".pth", ".bin", ".pkl"))]
    for part in ("optimizer", "scheduler"):
        assert {f"{part}.json", f"{part}.safetensors"} <= set(names)


def resume_error(out: Path, folder: Path, error: type[Exception], pattern: str) -> None:
    reseal(folder)
    verify_checkpoint(folder)  # the manifest agrees: only the loader can tell
    start = time.perf_counter()
    with pytest.raises(error, match=pattern):
        small_trainer(out).train(resume_from_checkpoint=folder)
    assert time.perf_counter() - start < 10.0


def test_a_missing_resume_state_is_an_error(trained: Path, tmp_path: Path) -> None:
    out = copy_run(trained, tmp_path / "run")
    folder = out / "checkpoint-4"
    (folder / "resume.json").unlink()
    resume_error(out, folder, CheckpointError, r"checkpoint-4/resume\.json: missing")
    assert inspect_command(str(folder), out=io.StringIO()) == 1


@pytest.mark.parametrize(
    ("drop", "pattern"),
    [
        (("global_step",), r"global_step missing"),
        (("position",), r"position missing"),
        (("position", "epoch_index"), r"position\.epoch_index missing"),
        (("log_history",), r"log_history missing"),
    ],
)
def test_a_state_file_without_a_field_is_an_error(
    trained: Path, tmp_path: Path, drop: tuple[str, ...], pattern: str
) -> None:
    out = copy_run(trained, tmp_path / "run")
    folder = out / "checkpoint-4"
    state = json.loads((folder / "trainer_state.json").read_text())
    *parents, field = drop
    holder = state
    for key in parents:
        holder = holder[key]
    del holder[field]
    (folder / "trainer_state.json").write_text(json.dumps(state))
    resume_error(out, folder, StateFileError, rf"checkpoint-4/trainer_state\.json: {pattern}")


def test_fields_added_after_the_first_release_may_be_missing(trained: Path, tmp_path: Path) -> None:
    out = copy_run(trained, tmp_path / "run")
    folder = out / "checkpoint-4"
    state = json.loads((folder / "trainer_state.json").read_text())
    del state["position"]["evaluations_left"]
    (folder / "trainer_state.json").write_text(json.dumps(state))
    reseal(folder)
    small_trainer(out).train(resume_from_checkpoint=folder)


def deep_optimizer(folder: Path) -> None:
    (folder / "optimizer.json").write_text('{"format": 1, "tree": ' + "[" * 100_000 + "]" * 100_000 + "}")


def malformed_scheduler(folder: Path) -> None:
    (folder / "scheduler.safetensors").write_bytes(b"\x00" * 64)


def unfitting_optimizer(folder: Path) -> None:
    save_tree(folder, "optimizer", {"state": {}, "param_groups": []})


@pytest.mark.parametrize(
    ("damage", "pattern"),
    [
        (deep_optimizer, r"optimizer\.json: nested deeper than 100 levels"),
        (malformed_scheduler, r"scheduler\.safetensors: not a readable safetensors file"),
        (unfitting_optimizer, r"optimizer\.json: does not fit this AdamW \(ValueError"),
    ],
    ids=["deep-optimizer", "malformed-scheduler", "unfitting-optimizer"],
)
def test_a_crafted_file_in_a_checkpoint_stops_the_resume(
    trained: Path, tmp_path: Path, damage: Any, pattern: str
) -> None:
    out = copy_run(trained, tmp_path / "run")
    folder = out / "checkpoint-4"
    damage(folder)
    resume_error(out, folder, CheckpointError, rf"checkpoint-4/{pattern}")


# -- checkpoints of an earlier release --------------------------------------------------------
def make_pickled(folder: Path) -> None:
    """Lay ``folder`` out as an earlier release did: each state dict a ``.pt`` file."""
    for part in ("optimizer", "scheduler"):
        torch.save(load_tree(folder, part), folder / f"{part}.pt")
        (folder / f"{part}.json").unlink()
        (folder / f"{part}.safetensors").unlink()
    reseal(folder)


def test_a_pickled_checkpoint_is_refused_until_upgraded(trained: Path, tmp_path: Path) -> None:
    expected = final_weights(
        copy_run(trained, tmp_path / "reference"), tmp_path / "reference" / "checkpoint-4"
    )
    out = copy_run(trained, tmp_path / "run")
    folder = out / "checkpoint-4"
    make_pickled(folder)
    with pytest.raises(CheckpointError, match=r"checkpoint-4/optimizer\.pt: a pickle, .*`lifecycle upgrade "):
        small_trainer(out).train(resume_from_checkpoint=folder)
    report = io.StringIO()
    assert inspect_command(str(folder), out=report) == 0
    assert "pickled files  optimizer.pt, scheduler.pt" in report.getvalue()

    assert main(["upgrade", str(folder)]) == 0
    verify_checkpoint(folder)
    assert not list(folder.glob("*.pt")) and (folder / "optimizer.json").is_file()
    assert main(["upgrade", str(folder)]) == 0  # nothing left to convert
    weights = final_weights(out, folder)
    assert all(torch.equal(weights[k], v) for k, v in expected.items())
