"""The search: objectives, strategies (ask/tell), the loop, the archive and the executors.

    from hwnas.search import make_config, search
"""

from __future__ import annotations

from hwnas.core.lazy import lazy_exports

_EXPORTS = {"search": "loop", "SearchResult": "loop", "make_config": "config", "RunConfig": "config",
            "SearchError": "config", "RunDir": "rundir"}
# lazy: importing one submodule (e.g. a strategy) must not load the whole loop
__getattr__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
