"""``hwnas bench``: every strategy and peer on a tabular benchmark, several seeds, scored alike."""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {"run_bench": "run", "print_summary": "run", "BenchError": "problem", "scores": "problem",
            "load_problem": "problem", "import_nb201": "importing"}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = sorted(_EXPORTS)
