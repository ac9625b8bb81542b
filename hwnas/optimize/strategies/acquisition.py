"""Acquisition functions where only one objective is uncertain.

Everything is minimised. A candidate's cheap objectives are known exactly and its expensive one is
``y ~ N(mean, sd)``; its expected hypervolume improvement over a front is an exact integral over
the front's staircase, and its expected improvement the classic closed form.

How it works, and why: ``docs/design.md`` (hwnas.optimize.strategies.acquisition).
"""

from __future__ import annotations

import numpy as np
from scipy.stats import norm

MAX_CELLS = 4096  # above this the cheap region is sampled (MC_POINTS uniform points)
MC_POINTS = 4096
CHUNK = 1024  # candidates per block of the (candidates x cells) arrays


def expected_improvement(best: float | np.ndarray, mean: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """E[max(0, best - y)] for y ~ N(mean, sd), elementwise (minimisation)."""
    sd = np.maximum(sd, 1e-12)
    z = (best - mean) / sd
    return (best - mean) * norm.cdf(z) + sd * norm.pdf(z)


def _cells(front_cheap: np.ndarray, front_y: np.ndarray, lower: np.ndarray, ref: np.ndarray,
           ref_y: float) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The grid cells (lo, hi) between ``lower`` and ``ref`` with their level L, or None if
    there are more than MAX_CELLS."""
    k = len(ref)
    breaks = [np.unique(np.concatenate([[lower[d]], np.clip(front_cheap[:, d], lower[d], ref[d]), [ref[d]]]))
              for d in range(k)]
    if np.prod([max(len(b) - 1, 1) for b in breaks], dtype=float) > MAX_CELLS:
        return None
    grids = np.meshgrid(*[np.arange(len(b) - 1) for b in breaks], indexing="ij")
    idx = np.stack([g.ravel() for g in grids], 1)
    lo = np.stack([breaks[d][idx[:, d]] for d in range(k)], 1)
    hi = np.stack([breaks[d][idx[:, d] + 1] for d in range(k)], 1)
    return lo, hi, _levels(lo, front_cheap, front_y, ref_y)


def _levels(points: np.ndarray, front_cheap: np.ndarray, front_y: np.ndarray, ref_y: float) -> np.ndarray:
    """L at each point: the best front value among front points that are <= the point."""
    if not len(front_y):
        return np.full(len(points), ref_y)
    below = np.all(front_cheap[None, :, :] <= points[:, None, :] + 1e-12, axis=2)
    return np.minimum(ref_y, np.where(below, front_y[None, :], np.inf).min(1))


def expected_hv_improvement(cheap: np.ndarray, mean: np.ndarray, sd: np.ndarray, front_cheap: np.ndarray,
                            front_y: np.ndarray, *, lower: np.ndarray, ref: np.ndarray,
                            rng: np.random.Generator) -> np.ndarray:
    """Expected hypervolume improvement of each candidate (rows of ``cheap`` with ``mean``,
    ``sd``) over the front (``front_cheap``, ``front_y``), up to the reference point ``ref``: the
    expensive objective's bound first, then the cheap objectives' (``k + 1`` values).

    ``lower`` bounds the cheap objectives from below (no candidate is better). ``rng`` is used
    only where the cheap region is sampled.
    """
    cheap = np.atleast_2d(np.asarray(cheap, dtype=float))
    front_cheap = np.asarray(front_cheap, dtype=float).reshape(-1, cheap.shape[1])
    front_y = np.asarray(front_y, dtype=float).ravel()
    ref_y, ref = float(ref[0]), np.asarray(ref[1:], dtype=float)
    cells = _cells(front_cheap, front_y, lower, ref, ref_y)
    if cells is None:
        points = rng.uniform(lower, ref, size=(MC_POINTS, len(ref)))
        level = _levels(points, front_cheap, front_y, ref_y)
        volume = float(np.prod(ref - lower)) / MC_POINTS
    out = np.zeros(len(cheap))
    for start in range(0, len(cheap), CHUNK):
        c = cheap[start:start + CHUNK]
        if cells is not None:
            lo, hi, level = cells
            width = np.ones((len(c), len(lo)))
            for d in range(c.shape[1]):
                width *= np.clip(hi[None, :, d] - np.maximum(lo[None, :, d], c[:, None, d]), 0.0, None)
        else:
            width = np.all(points[None, :, :] >= c[:, None, :], axis=2) * volume
        ei = expected_improvement(level[None, :], mean[start:start + CHUNK, None], sd[start:start + CHUNK, None])
        out[start:start + CHUNK] = (width * ei).sum(1)
    return out
