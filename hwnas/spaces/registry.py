"""The registry of search spaces by name (filled by ``hwnas.spaces``): an architecture looks up
its space here to validate itself."""

from __future__ import annotations

from hwnas.core.registry import Registry

SPACES: Registry[type] = Registry("space")  # SearchSpace subclasses
