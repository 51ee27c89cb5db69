"""Every ```python block of README.md and docs/*.md runs.

The blocks of one page run in order in one namespace (a later block may use what an earlier one made),
in a temporary folder. Names a page uses without defining them, as a reader's own code would, are
given: ``model``, ``train`` and ``val`` (a small classifier and its data) and ``mylib`` (a tracking
library). A block that is a fragment by design has ``<!-- not run: why -->`` right before it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from tests.support.helpers import Classifier
from tests.support.processes import REPO

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
FENCE = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)
NOT_RUN = re.compile(r"<!--\s*not run\b[^>]*-->\s*\Z")


def python_blocks(page: Path) -> list[tuple[int, str, bool]]:
    """``(line, code, runs)`` for each python block of ``page``."""
    text = page.read_text()
    return [
        (text.count("\n", 0, m.start()) + 1, m.group(1), not NOT_RUN.search(text[: m.start()]))
        for m in FENCE.finditer(text)
    ]


def rows(n: int, seed: int) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    return [{"x": xi, "labels": (xi[0] > 0).long()} for xi in x]


class FakeRun:
    """What a tracking library's ``init`` returns: a config to update, ``log`` and ``close``."""

    def __init__(self, name: str) -> None:
        self.name, self.config, self.logged = name, SimpleNamespace(update=lambda values: None), []

    def log(self, values: dict[str, Any], step: int | None = None) -> None:
        self.logged.append((step, values))

    def close(self) -> None:
        pass


def stand_ins() -> dict[str, Any]:
    torch.manual_seed(0)
    return {
        "__name__": "__docs__",
        "model": Classifier(),
        "train": rows(32, seed=1),
        "val": rows(16, seed=2),
        "mylib": SimpleNamespace(init=FakeRun),
    }


def test_blocks_are_found() -> None:
    """The pages have examples, and ``<!-- not run -->`` is rare."""
    found = [block for page in PAGES for block in python_blocks(page)]
    assert len(found) >= 10
    assert sum(not runs for _, _, runs in found) <= 3


@pytest.mark.parametrize(
    "page",
    [
        pytest.param(
            p, id=p.name, marks=[pytest.mark.needs_program("dot")] if ".render(" in p.read_text() else []
        )
        for p in PAGES
    ],
)
def test_python_blocks_run(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    namespace = stand_ins()
    for line, code, runs in python_blocks(page):
        if not runs:
            continue
        where = f"{page.relative_to(REPO)}:{line}"
        try:
            exec(compile(code, where, "exec"), namespace)
        except Exception as exc:
            raise AssertionError(f"the example at {where} failed: {type(exc).__name__}: {exc}") from exc
    assert os.getcwd() == str(tmp_path)
