"""Summaries over seeds: mean with a 95% confidence interval, and a rank test against random search."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def ci95(values: Sequence[float]) -> dict[str, Any]:
    from scipy import stats

    x = np.asarray(values, dtype=float)
    mean = float(x.mean())
    if len(x) < 2 or not np.all(np.isfinite(x)):
        return {"mean": mean, "ci95": [mean, mean], "n": len(x)}
    half = float(stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x)))
    return {"mean": mean, "ci95": [mean - half, mean + half], "n": len(x)}


def mann_whitney(a: Sequence[float], b: Sequence[float]) -> float | None:
    from scipy.stats import mannwhitneyu

    if len(a) < 2 or len(b) < 2 or (np.allclose(a, a[0]) and np.allclose(b, b[0]) and np.isclose(a[0], b[0])):
        return None
    return float(mannwhitneyu(a, b, alternative="two-sided").pvalue)
