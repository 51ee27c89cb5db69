"""Fixtures that several test files share.

Test files live here; the code they import in ``tests/support/``; the scripts they start as processes of
their own in ``tests/scripts/`` (with the checkout on ``PYTHONPATH``: ``tests.support.processes.child_env``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

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
