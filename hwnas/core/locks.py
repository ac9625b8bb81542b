"""One writer at a time: an exclusive lock on a run folder, or on the folder a table is written to.

The lock is ``fcntl.flock`` on the folder itself, so nothing is created for it: the kernel
releases it when the holder exits, however it exits (a ``kill -9`` included), and no lock file
is left behind. A second writer gets one line naming the holder's pid (read from the kernel's
``/proc/locks`` where there is one) instead of corrupting the first's work.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from hwnas.core.errors import HwnasError
from hwnas.core.files import output_folder


class LockedError(HwnasError, RuntimeError):
    """Another process is writing the same run folder or table."""


def holder(folder: Path) -> int | None:
    """The pid holding a flock on ``folder``, from /proc/locks (Linux); None where unknown."""
    try:
        st = os.stat(folder)
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        parts = line.split()
        # "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF" (blocked waiters carry a "->" first)
        if len(parts) < 6 or parts[1] != "FLOCK" or "->" in parts:
            continue
        try:
            major, minor, inode = parts[5].split(":")
            if int(inode) == st.st_ino and (int(major, 16), int(minor, 16)) == (os.major(st.st_dev), os.minor(st.st_dev)):
                return int(parts[4])
        except ValueError:
            continue
    return None


@contextlib.contextmanager
def exclusive(folder: Path, what: str) -> Iterator[None]:
    """Hold the lock on ``folder`` (created if missing) for the block; raise LockedError if another
    process holds it. ``what`` names the locked thing in the error ("run folder runs/a"). Not
    re-entrant: a process that takes the same lock twice is refused like any other."""
    try:
        import fcntl
    except ImportError:  # no flock (Windows): one writer is the user's to ensure
        yield
        return
    output_folder(folder)
    try:  # O_NOFOLLOW: a planted link must not make the lock land elsewhere
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        raise LockedError(f"{folder}: cannot open the {what} to lock it ({exc.strerror or exc})") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = holder(folder)
            by = f"pid {pid}" if pid is not None else "another process"
            raise LockedError(f"{what} is in use by {by}; wait for it to finish or stop it") from None
        yield
    finally:
        os.close(fd)  # closing releases the lock
