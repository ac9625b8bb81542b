"""hwnas logs and never prints: every message goes to the ``hwnas`` logger.

Library functions take ``log``, a callable of one line, defaulting to :func:`say`, which sends
``warning: ...`` lines to ``logger.warning`` and the rest to ``logger.info``. Nothing is shown
until the application configures logging; the ``hwnas`` command does (:func:`configure`):
rich's handler on a terminal, plain lines otherwise, ``-q`` for warnings only, ``-v`` for debug.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator

LOGGER = logging.getLogger("hwnas")
WARNING_PREFIX = "warning: "


def say(message: str) -> None:
    """Log one line: a ``warning: ...`` line as a warning, anything else as information."""
    if message.startswith(WARNING_PREFIX):
        LOGGER.warning(message[len(WARNING_PREFIX):])
    else:
        LOGGER.info(message)


class _Plain(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        return f"warning: {text}" if record.levelno == logging.WARNING else text


def configure(verbosity: int = 0) -> logging.Handler:
    """Show hwnas's log on stderr: 0 = information (the default), -1 = warnings only (``-q``),
    1 = debug (``-v``). Returns the handler, for :func:`unconfigure`."""
    level = logging.WARNING if verbosity < 0 else logging.DEBUG if verbosity > 0 else logging.INFO
    handler: logging.Handler
    if sys.stderr.isatty():
        from rich.logging import RichHandler

        handler = RichHandler(show_time=False, show_path=False, markup=False, rich_tracebacks=False)
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_Plain())
    handler.setLevel(level)
    handler.set_name("hwnas-configured")
    for old in [h for h in LOGGER.handlers if h.get_name() == "hwnas-configured"]:
        LOGGER.removeHandler(old)  # configured again (a second main() in one process): one handler
    LOGGER.addHandler(handler)
    LOGGER.setLevel(level)
    LOGGER.propagate = False  # the application's root handlers would print every line twice
    return handler


def unconfigure(handler: logging.Handler) -> None:
    LOGGER.removeHandler(handler)
    if not LOGGER.handlers:
        LOGGER.propagate = True
        LOGGER.setLevel(logging.NOTSET)


@contextlib.contextmanager
def quiet_logger(name: str) -> Iterator[None]:
    """Silence a library's logger below errors for the block (fvcore names every op it does not
    count, torch.onnx every optional package it lacks)."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)
