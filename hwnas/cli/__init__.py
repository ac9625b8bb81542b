"""The ``hwnas`` command line.

Every subcommand has ``--help``. Whatever goes wrong is one line on stderr (``hwnas: error:
...``), never a traceback, and the exit status says which kind: 0 done; 1 a runtime failure (an
unreadable or invalid input file, a device that fails, a run folder in use, a full disk); 2 a
usage error (an unknown command, option, name or value, as argparse does); 130 interrupted
(Ctrl-C) and 143 terminated (SIGTERM), finished work kept in both.

Set ``HWNAS_DEBUG=1`` to see the traceback behind an error line.
"""

from __future__ import annotations

import argparse
import logging
import contextlib
import os
import signal
import sqlite3
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from hwnas.cli.parser import _key_value, build_parser, printable
from hwnas.core.errors import HwnasError, UsageError
from hwnas.core.log import configure, unconfigure

__all__ = ["_entry", "_key_value", "build_parser", "main"]

Handler = Callable[[argparse.Namespace], int]


def main(argv: Sequence[str] | None = None) -> int:
    previous = _on_sigterm()  # first: a SIGTERM or Ctrl-C while torch loads is one line too
    try:
        parser = build_parser()
        argv = list(sys.argv[1:] if argv is None else argv)
        if argv[:2] == ["bench", "import"]:  # `hwnas bench import ...` reads better than a second command name
            argv = ["bench-import", *argv[2:]]
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:  # --help, --version or a usage error (already printed): its status
            return exc.code if isinstance(exc.code, int) else 2
        args.argv = argv  # the command line as given, recorded by commands that write results
        handler = configure(args.verbose - args.quiet)
        lines = logging.getLogger("hwnas.progress")  # a line per finished evaluation where no bar is drawn
        if getattr(args, "no_progress", False):
            lines.setLevel(logging.WARNING)
        try:
            return _handler(args.func)(args)
        finally:
            lines.setLevel(logging.NOTSET)
            unconfigure(handler)
    except UsageError as exc:
        return _fail(exc, str(exc), 2)
    except HwnasError as exc:
        return _fail(exc, str(exc), 1)
    except MemoryError as exc:
        return _fail(exc, "out of memory (a smaller --input, fewer workers or a smaller batch may fit)", 1)
    except sqlite3.Error as exc:  # the archive's database: a full disk, a locked or damaged file
        return _fail(exc, f"run archive: {exc}", 1)
    except BrokenPipeError:  # `hwnas ... | head` closed the pipe: nothing went wrong
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:  # a full disk, a read-only folder, a vanished file: named, not a traceback
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        return _fail(exc, f"{where}{exc.strerror or exc}", 1)
    except Terminated:
        print("hwnas: terminated; finished work is saved (search: --resume; profile: run it again)", file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print("hwnas: interrupted; finished work is saved (search: --resume; profile: run it again)", file=sys.stderr)
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _handler(name: str) -> Handler:
    import hwnas.cli.bench_commands as bench_commands
    import hwnas.cli.commands as commands  # loads torch: only once a command runs, not for --help

    handler: Handler = getattr(commands, name, None) or getattr(bench_commands, name)
    return handler


def _fail(exc: BaseException, line: str, code: int) -> int:
    if os.environ.get("HWNAS_DEBUG"):
        traceback.print_exception(exc)
    print(f"hwnas: error: {printable(line)}", file=sys.stderr)
    return code


class Terminated(KeyboardInterrupt):
    """SIGTERM, turned into the same orderly exit as Ctrl-C: every ``finally`` runs, so worker
    pools are closed and the archive and table keep what finished."""


def _on_sigterm() -> Any:
    def handler(_signum: int, _frame: Any) -> None:
        raise Terminated

    try:
        return signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (main() called from a worker): leave signals alone
        return None


def _terminated_late(_signum: int, _frame: Any) -> None:
    """SIGTERM after the command's work (while the interpreter shuts down): the same line and status."""
    with contextlib.suppress(OSError):
        os.write(2, b"hwnas: terminated; finished work is saved (search: --resume; profile: run it again)\n")
    os._exit(128 + signal.SIGTERM)


def _entry() -> None:  # console script
    # installed first, so that main() restores it when it returns: a SIGTERM at any moment of the
    # process's life, shutdown included, is one line and exit 143
    with contextlib.suppress(ValueError):
        signal.signal(signal.SIGTERM, _terminated_late)
    sys.exit(main())
