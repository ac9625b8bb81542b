"""A small explicit registry: things are registered by name, by a call, never by import side effect."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Generic, TypeVar

from hwnas.core.errors import UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to objects of one kind (spaces, strategies, estimators)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str, item: T) -> T:
        """Register ``item`` under ``name``; re-registering a name warns and replaces it."""
        if name in self._items and self._items[name] is not item:
            warnings.warn(f"{self.kind} {name!r} was already registered; replacing it", stacklevel=2)
        self._items[name] = item
        return item

    def get(self, name: str) -> T:
        """Return the item named ``name``; raises UnknownNameError listing the known names."""
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items)) or "none"
            raise UnknownNameError(f"unknown {self.kind} {name!r} (known: {known})") from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)
