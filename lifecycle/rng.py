"""Random number generators: seeded when a trainer is built, and their states as plain JSON data.

Python's, NumPy's (when installed), torch's CPU generator and every CUDA device's are captured at a
checkpoint and restored on resume, so dropout masks and random augmentations after a resume are the
ones the uninterrupted run draws.
"""

from __future__ import annotations

import base64
import logging
import random
from typing import Any

import attrs

__all__ = ["RngState", "capture_rng", "restore_rng", "set_seed"]

logger = logging.getLogger(__name__)


@attrs.define
class RngState:
    """Every generator's state; byte states are base64 text, NumPy's is its ``legacy=False`` dict."""

    python: list[Any] = attrs.field(factory=list)
    numpy: dict[str, Any] | None = None
    torch: str = ""
    cuda: list[str] = attrs.field(factory=list)


def _b64(tensor: Any) -> str:
    return base64.b64encode(tensor.numpy().tobytes()).decode("ascii")


def _bytes_tensor(text: str) -> Any:
    import torch

    return torch.frombuffer(bytearray(base64.b64decode(text)), dtype=torch.uint8)


def set_seed(seed: int) -> None:
    """Seed Python's, torch's (every device) and NumPy's (when installed) generators."""
    import torch

    random.seed(seed)
    torch.manual_seed(seed)
    try:
        import numpy
    except ImportError:  # numpy is optional
        return
    numpy.random.seed(seed % 2**32)


def capture_rng() -> RngState:
    """The current state of every generator this process uses."""
    import torch

    version, internal, gauss = random.getstate()
    state = RngState(python=[version, list(internal), gauss], torch=_b64(torch.get_rng_state()))
    try:
        import numpy
    except ImportError:
        pass
    else:
        np_state = numpy.random.get_state(legacy=False)
        np_state["state"] = {**np_state["state"], "key": np_state["state"]["key"].tolist()}
        state.numpy = np_state
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state.cuda = [_b64(s) for s in torch.cuda.get_rng_state_all()]
    return state


def restore_rng(state: RngState) -> None:
    """Put every generator back where :func:`capture_rng` found it."""
    import torch

    if state.python:
        version, internal, gauss = state.python
        random.setstate((version, tuple(internal), gauss))
    if state.torch:
        torch.set_rng_state(_bytes_tensor(state.torch))
    if state.numpy is not None:
        try:
            import numpy
        except ImportError:
            logger.warning("the checkpoint holds a NumPy random state but NumPy is not installed; skipped")
        else:
            np_state = dict(state.numpy)
            np_state["state"] = {
                **np_state["state"],
                "key": numpy.asarray(np_state["state"]["key"], numpy.uint32),
            }
            numpy.random.set_state(np_state)
    if state.cuda:
        if torch.cuda.is_available() and torch.cuda.device_count() == len(state.cuda):
            torch.cuda.set_rng_state_all([_bytes_tensor(s) for s in state.cuda])
        else:
            found = torch.cuda.device_count() if torch.cuda.is_available() else 0
            logger.warning(
                "the checkpoint holds random states for %d CUDA devices, this process sees %d; "
                "CUDA generators are not restored",
                len(state.cuda),
                found,
            )
