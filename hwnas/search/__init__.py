"""The search: objectives, strategies (ask/tell), the loop, the archive and the executors.

    from hwnas.search import make_config, search
"""

from __future__ import annotations

import sys
import types
from typing import Any

from hwnas.core.lazy import lazy_exports

_EXPORTS = {"search": "api", "SearchResult": "result", "FrontMember": "result", "make_config": "config", "RunConfig": "config",
            "SearchError": "config", "RunDir": "rundir"}
# lazy: importing one submodule (e.g. a strategy) must not load the whole loop
__getattr__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)


class _SearchPackage(types.ModuleType):
    """``hwnas.search`` is this package and, called, the search itself: ``hwnas.search(space=...)``
    (``hwnas.search.api.search``), so the name means one thing whichever way it is reached."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from hwnas.search.api import search

        return search(*args, **kwargs)


sys.modules[__name__].__class__ = _SearchPackage
