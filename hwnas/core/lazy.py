"""Lazy re-exports for package ``__init__`` files: a name loads its module on first use, so that
importing one submodule (a strategy, ``import hwnas``) does not load a whole stage or torch."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, names: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package`` that serves ``names`` (name -> module, absolute or
    relative to ``package``)."""

    def __getattr__(name: str) -> Any:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module if module.startswith("hwnas") else f"{package}.{module}"), name)

    return __getattr__
