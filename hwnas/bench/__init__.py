"""``hwnas bench``: every strategy and peer on a tabular benchmark, several seeds, scored alike."""

from __future__ import annotations

from typing import Any

_EXPORTS = ("run_bench", "print_summary", "BenchError", "import_nb", "scores", "load_problem")


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        from hwnas.bench import run

        return getattr(run, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = list(_EXPORTS)
