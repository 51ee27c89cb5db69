"""Where this checkout is, and the environment a process needs to run its code (``lifecycle``, ``tests``)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
#: scripts the tests start as processes of their own
SCRIPTS = REPO / "tests" / "scripts"


def child_env(**changes: str) -> dict[str, str]:
    """This process's environment with the checkout first on ``PYTHONPATH``, and ``changes``."""
    paths = [str(REPO), os.environ.get("PYTHONPATH", "")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p), **changes}


def free_port() -> int:
    """A TCP port on localhost that nothing listens on now (for a launcher's rendezvous)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
