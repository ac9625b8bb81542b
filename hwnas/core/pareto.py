"""Pareto fronts and the quality measures of a front (pymoo's sorting and indicators)."""

from __future__ import annotations

import numpy as np
from pymoo.indicators.hv import HV
from pymoo.indicators.igd import IGD
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting


def non_dominated(F: np.ndarray) -> np.ndarray:
    """Indices of the non-dominated rows of F (all objectives minimised)."""
    F = np.asarray(F, dtype=float)
    if len(F) == 0:
        return np.array([], dtype=int)
    return np.sort(NonDominatedSorting().do(F, only_non_dominated_front=True))


def constrained_front(F: np.ndarray, violation: np.ndarray) -> tuple[np.ndarray, bool]:
    """The front under constrained dominance: the non-dominated feasible rows, or, when none is
    feasible, the non-dominated rows among the least-violating ones. Returns (indices, feasible)."""
    violation = np.asarray(violation, dtype=float)
    feasible = np.flatnonzero(violation <= 0)
    if len(feasible):
        return feasible[non_dominated(F[feasible])], True
    if not len(violation):
        return np.array([], dtype=int), False
    least = np.flatnonzero(np.isclose(violation, violation.min(), rtol=1e-9, atol=0))
    return least[non_dominated(F[least])], False


def hypervolume(F: np.ndarray, ref: np.ndarray) -> float:
    """Hypervolume dominated by F (minimised) up to the reference point."""
    F = np.asarray(F, dtype=float)
    F = F[np.all(F < ref, axis=1)]
    return float(HV(ref_point=np.asarray(ref, dtype=float))(F)) if len(F) else 0.0


def scaled_hypervolume(F: np.ndarray, ideal: np.ndarray, nadir: np.ndarray, ref: float = 1.1) -> float:
    """Hypervolume of F after scaling each objective to [0, 1] between ``ideal`` and ``nadir``,
    up to ``ref`` in each, as a fraction of the reference box (0..1)."""
    F = np.asarray(F, dtype=float)
    if not len(F):
        return 0.0
    ideal, nadir = np.asarray(ideal, dtype=float), np.asarray(nadir, dtype=float)
    span = np.where(nadir > ideal, nadir - ideal, 1.0)
    k = F.shape[1]
    return hypervolume((F - ideal) / span, np.full(k, ref)) / ref ** k


def normalized_hypervolume(F: np.ndarray, true_front: np.ndarray, ref: np.ndarray) -> float:
    """HV(F) / HV(true front), both up to ``ref``: 1.0 means the true front was found."""
    best = hypervolume(true_front, ref)
    return hypervolume(F, ref) / best if best > 0 else 0.0


def igd(F: np.ndarray, true_front: np.ndarray, scale: np.ndarray | None = None) -> float:
    """Inverted generational distance from the true front to F (after optional scaling)."""
    F, T = np.asarray(F, float), np.asarray(true_front, float)
    if len(F) == 0:
        return float("inf")
    if scale is not None:
        F, T = F / scale, T / scale
    return float(IGD(T)(F))


def budget_regret(acc_found: np.ndarray, cost_found: np.ndarray, acc_all: np.ndarray, cost_all: np.ndarray,
                  budgets: np.ndarray) -> np.ndarray:
    """Per budget: best accuracy in the whole table within it, minus the best found within it.

    A budget under which nothing was found counts the full gap to the table's worst accuracy.
    """
    out = []
    for b in np.atleast_1d(budgets):
        true_best = np.max(acc_all[cost_all <= b])
        ok = cost_found <= b
        found = np.max(acc_found[ok]) if ok.any() else np.min(acc_all)
        out.append(true_best - found)
    return np.asarray(out, dtype=float)


def spread(n_total: int, limit: int | None) -> list[int]:
    """``limit`` indices spread evenly along a front of ``n_total`` (all of them when no limit)."""
    if limit is None or limit >= n_total:
        return list(range(n_total))
    if limit <= 0:
        return []
    return sorted({int(round(i)) for i in np.linspace(0, n_total - 1, limit)})
