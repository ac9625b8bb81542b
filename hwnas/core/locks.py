"""One writer at a time: an exclusive lock on a run folder or a latency table.

The lock is ``fcntl.flock`` on a small lock file that names its holder (pid, host, start time).
The kernel releases it when the holder exits, however it exits, so a crash never leaves a stale
lock behind; a second writer gets one line naming the holder instead of corrupting the first's work.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from hwnas.core.errors import HwnasError
from hwnas.core.files import output_folder


class LockedError(HwnasError, RuntimeError):
    """Another process is writing the same run folder or table."""


@contextlib.contextmanager
def exclusive(lock_path: Path, what: str) -> Iterator[None]:
    """Hold the lock at ``lock_path`` for the block; raise LockedError if another process has it.
    ``what`` names the locked thing in the error ("run folder runs/a"). Not re-entrant: a process
    that takes the same lock twice is refused like any other."""
    try:
        import fcntl
    except ImportError:  # no flock (Windows): one writer is the user's to ensure
        yield
        return
    output_folder(lock_path.parent)
    try:  # O_NOFOLLOW: a planted link must not make the lock write elsewhere
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o666)
    except OSError as exc:
        raise LockedError(f"{lock_path}: cannot open the lock of the {what} ({exc.strerror or exc})") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 256, 0).decode(errors="replace").strip() or "another process"
            raise LockedError(f"{what} is in use by {holder}; wait for it to finish or stop it") from None
        note = f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%dT%H:%M:%S%z')}"
        os.ftruncate(fd, 0)
        os.pwrite(fd, note.encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the lock
