"""``hwnas bench``: every strategy and peer on a tabular benchmark, several seeds, scored alike."""

from __future__ import annotations

from hwnas.core.lazy import lazy_exports

_EXPORTS = {"run_bench": "run", "BenchPlan": "run", "print_summary": "run", "BenchError": "problem",
            "scores": "problem", "tabular_problem": "problem", "load_problem": "problem", "Scoring": "problem",
            "import_nb201": "importing"}
__getattr__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
