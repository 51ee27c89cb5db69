"""Running Graphviz's ``dot`` executable: DOT source in, SVG/PNG/PDF bytes out."""

from __future__ import annotations

import shutil
import subprocess

__all__ = ["GraphvizNotFound", "render_dot"]


class GraphvizNotFound(RuntimeError):
    """Graphviz's ``dot`` executable is not on ``PATH``."""


def render_dot(source: str, fmt: str) -> bytes:
    """Run Graphviz's ``dot -T<fmt>`` on ``source``."""
    exe = shutil.which("dot")
    if exe is None:
        raise GraphvizNotFound(
            "drawing SVG or PNG needs Graphviz's `dot` executable, which is not on PATH. Install Graphviz "
            "(Debian/Ubuntu: apt-get install graphviz; macOS: brew install graphviz; conda: conda install "
            "graphviz), or draw Mermaid text instead (format='mermaid', or a .mmd file), which needs nothing."
        )
    done = subprocess.run([exe, f"-T{fmt}"], input=source.encode(), capture_output=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(
            f"dot -T{fmt} failed ({done.returncode}): {done.stderr.decode(errors='replace').strip()}"
        )
    return done.stdout
