"""The search: objectives, strategies (ask/tell), the loop, the archive and the executors.

    from hwnas.search import make_config, search
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {"search": "loop", "SearchResult": "loop", "make_config": "config", "RunConfig": "config",
            "SearchError": "config", "RunDir": "rundir"}


def __getattr__(name: str) -> Any:
    # lazy: importing one submodule (e.g. a strategy) must not load the whole loop
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = sorted(_EXPORTS)
