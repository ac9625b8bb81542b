"""The bench's figures: hypervolume over evaluations, and the final fronts against the true one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from hwnas.bench.problem import Scoring, scores
from hwnas.bench.stats import ci95
from hwnas.core.pareto import non_dominated
from hwnas.core.plots import add_legend, new_axes, save_figure


def plot_hv(path: Path, problem: Scoring, traces: dict[str, dict[int, list[dict[str, Any]]]], seeds: int, evaluations: int,
             finals: dict[str, dict[str, list[float]]]) -> None:
    grid = np.unique(np.linspace(1, evaluations, min(evaluations, 50)).astype(int))
    fig, ax = new_axes(6.4, 4.2)
    for name, runs in traces.items():
        if "@" in name:  # a reference with its own budget: where it ends, as a level
            ax.axhline(float(np.mean(finals[name]["hv"])), color="0.3", ls=":", lw=1.5, label=f"{name} (final)")
            continue
        hv = np.array([[scores(problem, runs[s][:k])["hv"] for k in grid] for s in range(seeds)])
        mean = hv.mean(0)
        ci = [ci95(hv[:, j])["ci95"] for j in range(len(grid))]
        ax.plot(grid, mean, label=name, lw=2 if name == "random" else 1.5, ls="--" if name == "random" else "-")
        ax.fill_between(grid, [c[0] for c in ci], [c[1] for c in ci], alpha=0.2)
    ax.set_xlabel("expensive evaluations")
    ax.set_ylabel("normalised hypervolume (true front = 1)")
    ax.set_title(f"{problem.accuracy} vs {problem.cost}: mean and 95% CI over {seeds} seeds", fontsize=9)
    add_legend(ax, fontsize=8)
    save_figure(fig, path)


def plot_fronts(path: Path, problem: Scoring, traces: dict[str, dict[int, list[dict[str, Any]]]],
                 finals: dict[str, dict[str, list[float]]], seeds: int) -> None:
    fig, ax = new_axes(6.4, 4.2)
    names = problem.objectives.names
    ai, ci = names.index(problem.accuracy), names.index(problem.cost)

    def unscale(F: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raw = F * problem.scale + problem.ideal
        return raw[:, ci], -raw[:, ai]

    x, y = unscale(problem.true_front)
    order = np.argsort(x)
    ax.plot(x[order], y[order], "k-", lw=2, label="true front")
    for name, runs in traces.items():
        median_seed = int(np.argsort(finals[name]["hv"])[len(finals[name]["hv"]) // 2])
        ok = [r for r in runs[median_seed] if r["status"] == "complete" and r["violation"] <= 0]
        if not ok:
            continue
        F = (problem.objectives.F({m: np.array([r[m] for r in ok]) for m in names}) - problem.ideal) / problem.scale
        fx, fy = unscale(F[non_dominated(F)])
        o = np.argsort(fx)
        ax.plot(fx[o], fy[o], "o-", ms=3, lw=1, label=f"{name} (seed {median_seed}, median HV)")
    ax.set_xlabel(problem.cost)
    ax.set_ylabel(problem.accuracy)
    add_legend(ax, fontsize=7)
    save_figure(fig, path)
