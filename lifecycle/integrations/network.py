"""Whether a tracking server answers, asked in a way that never holds training up for long."""

from __future__ import annotations

import socket
import threading
from urllib.parse import urlparse

__all__ = ["PROBE_SECONDS", "reachable"]

PROBE_SECONDS = 3.0


def reachable(url: str, seconds: float = PROBE_SECONDS) -> bool:
    """Whether a TCP connection to ``url``'s host opens within ``seconds`` (name lookup included)."""
    parsed = urlparse(url)
    host, port = parsed.hostname, parsed.port or (80 if parsed.scheme == "http" else 443)
    if not host:
        return False
    answer: list[bool] = []

    def probe() -> None:
        try:
            socket.create_connection((host, port), timeout=seconds).close()
            answer.append(True)
        except OSError:
            answer.append(False)

    thread = threading.Thread(target=probe, daemon=True, name="tracker-probe")
    thread.start()
    thread.join(seconds)
    return bool(answer and answer[0])
