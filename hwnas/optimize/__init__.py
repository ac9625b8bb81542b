"""The search: the problem, its objectives and budgets, the strategies (ask/tell), the loop, the
archive and the executors.

    from hwnas.optimize import Problem, minimize
"""

from __future__ import annotations

from hwnas.core.lazy import lazy_exports

_EXPORTS = {"Problem": "problem", "Sources": "problem", "minimize": "minimize", "resume": "minimize",
            "run_search": "loop", "SearchResult": "result", "FrontMember": "result", "make_config": "config",
            "RunConfig": "config", "SearchError": "problem", "ConfigError": "problem", "RunDir": "rundir"}
# lazy: importing one submodule (e.g. a strategy) must not load the whole loop
__getattr__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
