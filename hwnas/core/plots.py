"""Figures for the files hwnas writes (PNG): matplotlib's object API only, so that no library
call selects a backend or leaves figures in pyplot's global registry."""

from __future__ import annotations

from typing import Any


def new_axes(width: float, height: float, *, dpi: int = 110) -> tuple[Any, Any]:
    """A fresh (figure, axes) pair; save it with ``fig.savefig(path)``, nothing to close."""
    from matplotlib.figure import Figure  # loads only when a plot is written

    fig = Figure(figsize=(width, height), dpi=dpi)
    return fig, fig.subplots()
