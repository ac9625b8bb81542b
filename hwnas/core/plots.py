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


UNITS = {"_ms": "ms", "_mj": "mJ", "_pct": "%", "_bytes": "bytes"}
LABELS = {"accuracy": "accuracy (%)", "params": "parameters", "flops": "FLOPs (2 x multiply-accumulates)",
          "macs": "multiply-accumulates (MACs)", "latency_ms": "latency (ms)", "energy_mj": "energy per inference (mJ)"}


def metric_label(name: str) -> str:
    """An axis label with the unit: ``latency_ms`` -> ``latency (ms)``, a benchmark column
    ``pi5_onnx_latency_ms`` -> ``pi5_onnx_latency (ms)``."""
    if name in LABELS:
        return LABELS[name]
    for suffix, unit in UNITS.items():
        if name.endswith(suffix):
            return f"{name[: -len(suffix)]} ({unit})"
    return name


def staircase(ax: Any, xs: list[float], ys: list[float], *, x_min: bool = True, y_max: bool = True,
              **style: Any) -> None:
    """A 2-D Pareto front as the staircase that bounds what it dominates (not straight segments,
    which would suggest trade-offs between members that no model offers)."""
    pts = sorted(zip(xs, ys), reverse=not x_min)
    if not pts:
        return
    # (x min, y max): from each member, the attained y holds until the next member's x
    where = "post" if x_min == y_max else "pre"
    ax.step([p[0] for p in pts], [p[1] for p in pts], where=where, **style)
    ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=22, color=style.get("color"), zorder=3)
