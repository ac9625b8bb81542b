"""hwnas: hardware-aware, multi-objective neural architecture search.

Profile a device into a latency table, search a space under its budget, export the Pareto front
as verified ONNX models.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("hwnas")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"
