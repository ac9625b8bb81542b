"""Leaving nothing behind: worker processes that end with their parent, and scratch folders that
a killed run's successor removes.

A ``kill -9`` gives hwnas no chance to clean up, so both are arranged beforehand:
- :func:`die_with_parent` (a pool initializer) makes a worker exit when the process that started
  it is gone, instead of training on for half an hour as an orphan;
- :func:`scratch_folder` names each temporary folder after the process that owns it, and removes
  the folders of owners that no longer run whenever a new one is made.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

PREFIX = "hwnas-"
POLL_S = 1.0


def die_with_parent(parent: int | None = None) -> None:
    """Exit this process when its parent dies (pool initializer; Linux does it in the kernel).
    ``parent`` is the pid the parent had when it started this process: a parent killed while the
    worker was still starting is then noticed too (``getppid`` would already name init)."""
    parent = os.getppid() if parent is None else parent
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            import ctypes

            PR_SET_PDEATHSIG = 1
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the kernel was told
        os._exit(1)

    def watch() -> None:  # everywhere else (and as a second guard): poll the parent's pid
        while True:
            time.sleep(POLL_S)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="hwnas-parent-watch", daemon=True).start()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def sweep_scratch(root: Path | None = None) -> list[Path]:
    """Remove scratch folders whose owning process is gone; returns what was removed."""
    root = Path(root or tempfile.gettempdir())
    removed = []
    for folder in root.glob(f"{PREFIX}*-p*-*"):
        owner = folder.name.rsplit("-p", 1)[-1].split("-", 1)[0]
        if folder.is_dir() and not folder.is_symlink() and owner.isdigit() and not _alive(int(owner)):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


@contextlib.contextmanager
def scratch_folder(kind: str) -> Iterator[str]:
    """A private temporary folder ``hwnas-<kind>-p<pid>-<random>``, removed on exit; folders left
    by killed runs are swept first."""
    sweep_scratch()
    path = tempfile.mkdtemp(prefix=f"{PREFIX}{kind}-p{os.getpid()}-")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def compile_caches_in_scratch() -> None:
    """Point torch's compile caches (``torchinductor_<user>``, which torch.export and even an
    optimizer step may create in the temporary folder and keep) at a scratch folder of this
    process: removed at exit, and swept after a kill. A user's own setting is kept."""
    if "TORCHINDUCTOR_CACHE_DIR" in os.environ:
        return
    folder = Path(tempfile.gettempdir()) / f"{PREFIX}compile-p{os.getpid()}-cache"
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(folder / "inductor")
    os.environ.setdefault("TRITON_CACHE_DIR", str(folder / "triton"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
