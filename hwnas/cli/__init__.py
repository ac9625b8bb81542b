"""The ``hwnas`` command line.

Every subcommand has ``--help``. Bad input exits with code 2 and one line on stderr that names
what is wrong (``hwnas: error: ...``), as argparse does for usage errors.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any

from hwnas.cli.parser import _key_value, build_parser
from hwnas.core.errors import HwnasError

__all__ = ["_entry", "_key_value", "build_parser", "main"]

Handler = Callable[[argparse.Namespace], int]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:2] == ["bench", "import"]:  # `hwnas bench import ...` reads better than a second command name
        argv = ["bench-import", *argv[2:]]
    args = parser.parse_args(argv)
    args.argv = argv  # the command line as given, recorded by commands that write results
    handler: Handler = args.func
    previous = _on_sigterm()
    try:
        return handler(args)
    except HwnasError as exc:
        print(f"hwnas: error: {exc}", file=sys.stderr)
        return 2
    except Terminated:
        print("hwnas: terminated; finished work is saved (search: --resume; profile: run it again)", file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print("hwnas: interrupted; finished work is saved (search: --resume; profile: run it again)", file=sys.stderr)
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


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


def _entry() -> None:  # console script
    sys.exit(main())
