"""Fixtures and markers that several test files share.

Test files live here; the code they import in ``tests/support/``; the scripts they start as processes of
their own in ``tests/scripts/`` (with the checkout on ``PYTHONPATH``: ``tests.support.processes.child_env``).

Markers (declared in pyproject.toml):

- ``slow``: the test starts real processes for several seconds (``torchrun``, a training process killed
  with SIGKILL, the demo, ...). It runs by default, as in CI; ``pytest -m "not slow"`` is the quick run.
- ``needs_program("dot")``: the test is skipped unless each named program is on ``PATH``.

What a test needs that a machine may lack is said one way each:

- a Python module the whole file needs: ``pytest.importorskip("name")`` at module level, right after the
  imports (``name = ...`` when the file uses it); a module only one test needs: ``pytest.importorskip``
  as that test's first statement;
- a program (Graphviz ``dot``, ``node``): ``@pytest.mark.needs_program("dot")``, or in a parametrization
  ``pytest.param(..., marks=pytest.mark.needs_program("dot"))``;
- anything else (root for ``unshare``, a loopback interface, a folder set up by hand):
  ``@pytest.mark.skipif(condition, reason=...)`` with the condition computed when the file is imported.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """``needs_program``: a skip for each test that names a program missing from ``PATH``."""
    for item in items:
        for mark in item.iter_markers("needs_program"):
            missing = [name for name in mark.args if shutil.which(name) is None]
            if missing:
                item.add_marker(pytest.mark.skip(reason=f"not on PATH: {', '.join(missing)}"))


#: settings every tracker test runs under: nothing phones home, nothing lands in the real HOME
QUIET_ENV = {
    "COMET_AUTO_LOG_ENV_DETAILS": "false",
    "COMET_ERROR_TRACKING_ENABLE": "false",
    "WANDB_MODE": "offline",
    "NEPTUNE_MODE": "offline",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DVC_NO_ANALYTICS": "1",
}
#: settings that would change which tracker does what; tests start without them
CLEARED_ENV = (
    "COMET_API_KEY",
    "COMET_MODE",
    "COMET_START_ONLINE",
    "COMET_OFFLINE_DIRECTORY",
    "TENSORBOARD_LOGGING_DIR",
    "MLFLOW_TRACKING_URI",
    "MLFLOW_EXPERIMENT_NAME",
    "MLFLOW_RUN_ID",
    "SWANLAB_API_KEY",
    "SWANLAB_MODE",
    "SWANLAB_PROJECT",
    "SWANLAB_RUN_ID",
    "SWANLAB_RESUME",
    "SWANLAB_LOG_DIR",
    "TRACKIO_SPACE_ID",
    "RANK",
)


@pytest.fixture
def tracker_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Quiet tracker settings, none of the user's, and HOME/TMPDIR in the test's own ``home`` folder
    (returned). Tracker test files take it for every test: ``pytestmark = pytest.mark.usefixtures(...)``."""
    for key, value in QUIET_ENV.items():
        monkeypatch.setenv(key, value)
    for key in CLEARED_ENV:
        monkeypatch.delenv(key, raising=False)
    home = tmp_path / "home"
    home.mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("TMPDIR", str(home))
    return home
