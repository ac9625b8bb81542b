"""Figures for the files hwnas writes (PNG): matplotlib's object API only, so that no library
call selects a backend or leaves figures in pyplot's global registry."""

from __future__ import annotations

import os
from typing import Any

from hwnas.core.files import atomic_path


def new_axes(width: float, height: float, *, dpi: int = 110) -> tuple[Any, Any]:
    """A fresh (figure, axes) pair; write it with ``save_figure(fig, path)``, nothing to close."""
    from matplotlib.figure import Figure  # loads only when a plot is written

    fig = Figure(figsize=(width, height), dpi=dpi)
    return fig, fig.subplots()


def save_figure(fig: Any, path: str | os.PathLike[str]) -> None:
    """Lay out and write ``fig`` as a PNG, atomically and only as a regular file."""
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")


def add_legend(ax: Any, **kwargs: Any) -> None:
    """A legend where something is labelled; none (and no matplotlib warning) where nothing is."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(**kwargs)
