"""The lock on an ``output_dir``: one live trainer writes into it at a time.

``output_dir/.lifecycle.lock`` is locked with ``fcntl.flock`` for the whole of ``train()`` and holds
the holder's pid, host and start time, so that a refused run can say who has the folder. ``flock``
rather than a file created with ``O_EXCL``: the kernel drops the lock when its holder exits however
it exits (an exception, ``SIGKILL``, a crashed node's lease running out), so a lock file left behind by
a killed process is simply locked again, with no guessing from pids that may have been reused. The
holder removes the file as it lets go (a trainer that locked a file just removed tries the new one).

Across hosts: on NFS, Linux carries ``flock`` to the server as a whole-file POSIX lock, so a trainer on
another host is refused too, and the lock of a host that died goes when the server's lease on it
expires. Filesystems that keep locks per host (some FUSE mounts, Lustre mounted ``localflock``) exclude
only trainers on the same host; where the filesystem has no locks at all, a warning says that nothing
keeps a second run out. The run id in each checkpoint still keeps a run from resuming or rotating
another run's checkpoints.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import socket
import time
from pathlib import Path
from types import TracebackType

__all__ = ["LOCK_FILE", "OutputDirError", "OutputDirLock", "OutputDirLocked"]

logger = logging.getLogger(__name__)

LOCK_FILE = ".lifecycle.lock"
_NO_LOCKS = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL)


class OutputDirError(RuntimeError):
    """An ``output_dir`` that this run cannot use; the message names it and says what to do."""


class OutputDirLocked(OutputDirError):
    """Another live trainer holds the ``output_dir``; the message names it (pid, host)."""


class OutputDirLock:
    """``with OutputDirLock(output_dir):`` holds the folder's lock, or raises :class:`OutputDirLocked`."""

    def __init__(self, output_dir: str | Path):
        self.path = Path(output_dir) / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _holder(fd)
                os.close(fd)
                raise OutputDirLocked(
                    f"{self.path.parent} is in use by another trainer ({holder}; lock file {self.path}); "
                    "wait for it to finish, stop it, or choose another output_dir"
                ) from None
            except OSError as exc:
                os.close(fd)
                if exc.errno not in _NO_LOCKS:
                    raise
                logger.warning("%s: the filesystem has no locks; nothing keeps a second run out", self.path)
                return
            if _same_file(fd, self.path):
                break
            os.close(fd)  # its holder removed it as we opened it: lock the one there now
        since = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        record = {"pid": os.getpid(), "host": socket.gethostname(), "since": since}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)
        self._fd = fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            self.path.unlink(missing_ok=True)  # while still locked: the next trainer creates it anew
            os.close(fd)  # closing the file drops the lock

    def __enter__(self) -> OutputDirLock:
        self.acquire()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


def _same_file(fd: int, path: Path) -> bool:
    try:
        on_disk = path.stat()
    except FileNotFoundError:
        return False
    return (on_disk.st_dev, on_disk.st_ino) == (os.fstat(fd).st_dev, os.fstat(fd).st_ino)


def _holder(fd: int) -> str:
    """Who holds the lock, as its file says."""
    try:
        record = json.loads(os.pread(fd, 4096, 0))
        pid, host, since = int(record["pid"]), str(record["host"]), str(record["since"])
    except (OSError, ValueError, KeyError, TypeError):
        return "holder unknown: the lock file names none"
    said = f"pid {pid} on host {host}, since {since}"
    if host == socket.gethostname() and not _alive(pid):
        said += "; that process has exited, and one it started (a data loader worker?) still holds the lock"
    return said


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, run by another user
        return True
    return True
