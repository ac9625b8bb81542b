"""The package version and the versions every output records beside its results."""

from __future__ import annotations

import platform
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("hwnas")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"


def versions() -> dict[str, str]:
    """hwnas, Python and the libraries that decide a result (recorded in archives, tables, cards)."""
    import numpy
    import onnxruntime
    import pymoo
    import torch

    return {"hwnas": __version__, "python": platform.python_version(), "numpy": numpy.__version__,
            "torch": torch.__version__, "onnxruntime": onnxruntime.__version__, "pymoo": pymoo.__version__}
