"""The boundary correction of a latency table, fitted on whole models timed with its blocks.

A block timed alone misses its boundary (its own session call and layout conversions, which a
whole model pays once) and finds its weights in cache. Per block kind, a boundary cost, a cost
per tensor element and a cost per parameter are fitted by ridge least squares on relative error
against the whole models (``context``) timed in the same profile, with leave-one-out errors
reported. Raises CorrectionError when the models cannot support a fit.

How it works, and why: ``docs/design.md`` (hwnas.latency.correction).
"""

from __future__ import annotations


import numpy as np

from hwnas.core.errors import HwnasError
from hwnas.latency.records import ContextFit, KindTerms
from hwnas.latency.table import LatencyTable
from hwnas.spaces.base import SearchSpace


class CorrectionError(HwnasError, ValueError):
    """A table whose context models cannot support the boundary fit."""


RIDGE = 1e-3
ELEMENT_UNIT = 1e5
PARAM_UNIT = 1e5


def catalog_features(space: SearchSpace) -> tuple[list[str], np.ndarray, np.ndarray]:
    catalog = space.catalog()
    kinds = sorted({b.kind for b in catalog})
    kind_of = np.array([kinds.index(b.kind) for b in catalog])
    elements = np.array([
        (np.prod(b.in_shape) * b.n_inputs + np.prod(b.out_shape)) / ELEMENT_UNIT for b in catalog
    ])
    return kinds, kind_of, elements


def block_params(space: SearchSpace, table: LatencyTable) -> np.ndarray:
    """Parameters of each catalog block, in units of 1e5. Read from the table's entries; counted
    (and written into the entries) where an entry lacks them, as in tables made before the term."""
    from hwnas.spaces.facts import count_params

    out = np.zeros(len(space.catalog()))
    for i, b in enumerate(space.catalog()):
        entry = table.entries.get(b.key)
        if entry is None:
            continue
        if entry.params is None:
            entry.params = count_params(space.build_block(b))
        out[i] = entry.params / PARAM_UNIT
    return out


def _design(space: SearchSpace, counts: np.ndarray, params: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Per model: [blocks of each kind, elements of each kind, params of each kind, 1]."""
    kinds, kind_of, elements = catalog_features(space)
    onehot = np.eye(len(kinds))[kind_of]  # (ncat, kinds)
    K = counts @ onehot
    B = counts @ (onehot * elements[:, None])
    P = counts @ (onehot * params[:, None])
    return np.hstack([K, B, P, np.ones((len(counts), 1))]), kinds


def _solve(A: np.ndarray, y: np.ndarray, ridge: float) -> np.ndarray:
    # columns scaled to unit RMS first, so that one ridge weight suits counts, elements and params
    scale = np.sqrt((A ** 2).mean(0)) + 1e-12
    As = A / scale
    return np.linalg.solve(As.T @ As + ridge * np.eye(A.shape[1]), As.T @ y) / scale


def _error_summary(pred: np.ndarray, measured: np.ndarray) -> dict[str, float]:
    rel = pred / measured - 1
    return {"mape": float(np.mean(np.abs(rel))), "within_10": float(np.mean(np.abs(rel) <= 0.10)),
            "max_abs_err": float(np.max(np.abs(rel))), "median_err": float(np.median(rel))}


def fit_context(space: SearchSpace, table: LatencyTable, *, ridge: float = RIDGE) -> ContextFit:
    """Fit the boundary correction on the table's context models (see the module docstring);
    raises CorrectionError for fewer than 3 models or one that uses a block the table lacks."""
    models = [m for m in table.context.models if m.stats]
    if len(models) < 3:
        raise CorrectionError(f"{table.path or 'the table'}: the context fit needs at least 3 whole models, "
                              f"got {len(models)} (profile with --context-models 3 or more)")
    stat = table.statistic
    genes = np.array([space.parse(m.arch).genes for m in models])
    measured = np.array([float(m.stats[f"{stat}_ms"]) for m in models])  # type: ignore[index,arg-type]
    iso = iso_values(space, table)
    counts = space.block_counts(genes)
    raw = counts @ iso
    if not np.all(np.isfinite(raw)):
        raise CorrectionError(f"{table.path or 'the table'}: a context model uses a block the table lacks")
    X, kinds = _design(space, counts, block_params(space, table))
    A, y = X / measured[:, None], (raw - measured) / measured
    coef = _solve(A, y, ridge)
    loo = np.empty_like(measured)
    for i in range(len(measured)):
        keep = np.arange(len(measured)) != i
        c = _solve(A[keep], y[keep], ridge)
        loo[i] = raw[i] - X[i] @ c
    k = len(kinds)
    return ContextFit(
        overhead_ms=float(-coef[-1]),
        per_kind={kind: KindTerms(float(coef[i]), float(coef[k + i]), float(coef[2 * k + i]))
                  for i, kind in enumerate(kinds)},
        ridge=ridge, n_models=len(models),
        leave_one_out=_error_summary(loo, measured), raw_sum=_error_summary(raw, measured),
        formula="sum_b [t(b) - per_block_ms[kind] - per_100k_elements_ms[kind] * elements(b)/1e5 "
                "- per_100k_params_ms[kind] * params(b)/1e5] + overhead_ms",
    )


def iso_values(space: SearchSpace, table: LatencyTable) -> np.ndarray:
    """Table statistic per catalog block, NaN where the table has no entry."""
    out = np.full(len(space.catalog()), np.nan)
    for i, b in enumerate(space.catalog()):
        entry = table.entries.get(b.key)
        if entry is not None:
            out[i] = entry.latency_ms
    return out
