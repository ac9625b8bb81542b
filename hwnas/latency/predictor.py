"""Predict whole-model latency and energy from a table, vectorised over populations.

Fusion awareness. Each table entry is a whole block (an MBConv, a dense layer, a cell edge)
timed alone, so fusion *inside* a block (Conv+BN+ReLU into one kernel) is measured as it happens.
What a block timed alone gets wrong is its boundary: its own session call, and the layout
conversions onnxruntime inserts at a graph's inputs and outputs (NCHW <-> NCHWc on x86 CPUs at
optimisation level "all"), which a whole model pays once, not once per block. On this machine,
summing isolated blocks over-predicted small MobileNet models by up to 35% and NB-201 models by
17-134%.

So hwnas fits a boundary correction per block kind on whole models timed in the same profiling
run (``context`` in the table)::

    latency(model) = sum over blocks b of [ t(b) - beta[kind b] - gamma[kind b] * elements(b) ] + overhead

where ``t(b)`` is the table statistic, ``elements(b)`` the block's input plus output tensor sizes
(per 100k elements), and beta, gamma, overhead are fitted by ridge least squares on relative
error. The table records the fit's leave-one-out error next to the raw sum's, so the gain is
shown, not claimed. An optional calibration (``hwnas validate --calibrate``) then scales the
result: ``scale * latency + offset``.

Energy, where measured, is the sum of each block's energy, scaled like its latency to context
(energy ~ time at the block's power).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hwnas.latency.table import LatencyTable, MissingEntryError
from hwnas.spaces.base import Architecture, SearchSpace

RIDGE = 1e-3
ELEMENT_UNIT = 1e5


def _catalog_features(space: SearchSpace) -> tuple[list[str], np.ndarray, np.ndarray]:
    catalog = space.catalog()
    kinds = sorted({b.kind for b in catalog})
    kind_of = np.array([kinds.index(b.kind) for b in catalog])
    elements = np.array([
        (np.prod(b.in_shape) * b.n_inputs + np.prod(b.out_shape)) / ELEMENT_UNIT for b in catalog
    ])
    return kinds, kind_of, elements


def _design(space: SearchSpace, counts: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Per model: [blocks of each kind, elements of each kind, 1]."""
    kinds, kind_of, elements = _catalog_features(space)
    onehot = np.eye(len(kinds))[kind_of]  # (ncat, kinds)
    K = counts @ onehot
    B = counts @ (onehot * elements[:, None])
    return np.hstack([K, B, np.ones((len(counts), 1))]), kinds


def _solve(A: np.ndarray, y: np.ndarray, ridge: float) -> np.ndarray:
    return np.linalg.solve(A.T @ A + ridge * np.eye(A.shape[1]), A.T @ y)


def _error_summary(pred: np.ndarray, measured: np.ndarray) -> dict[str, float]:
    rel = pred / measured - 1
    return {"mape": float(np.mean(np.abs(rel))), "within_10": float(np.mean(np.abs(rel) <= 0.10)),
            "max_abs_err": float(np.max(np.abs(rel))), "median_err": float(np.median(rel))}


def fit_context(space: SearchSpace, table: LatencyTable, *, ridge: float = RIDGE) -> dict[str, Any]:
    """Fit the boundary correction on the table's context models (see the module docstring)."""
    models = table.context.get("models", [])
    if len(models) < 3:
        raise ValueError("the context fit needs at least 3 whole models")
    stat = table.statistic
    genes = np.array([space.parse(m["arch"]).genes for m in models])
    measured = np.array([m["stats"][f"{stat}_ms"] for m in models])
    iso = _iso_values(space, table)
    counts = space.block_counts(genes)
    raw = counts @ iso
    if not np.all(np.isfinite(raw)):
        raise ValueError("a context model uses a block the table lacks")
    X, kinds = _design(space, counts)
    A, y = X / measured[:, None], (raw - measured) / measured
    coef = _solve(A, y, ridge)
    loo = np.empty_like(measured)
    for i in range(len(measured)):
        keep = np.arange(len(measured)) != i
        c = _solve(A[keep], y[keep], ridge)
        loo[i] = raw[i] - X[i] @ c
    k = len(kinds)
    return {
        "formula": "sum_b [t(b) - per_block_ms[kind] - per_100k_elements_ms[kind] * elements(b)/1e5] + overhead_ms",
        "overhead_ms": float(-coef[-1]),
        "per_kind": {kind: {"per_block_ms": float(coef[i]), "per_100k_elements_ms": float(coef[k + i])}
                     for i, kind in enumerate(kinds)},
        "ridge": ridge,
        "n_models": len(models),
        "leave_one_out": _error_summary(loo, measured),
        "raw_sum": _error_summary(raw, measured),
    }


def _iso_values(space: SearchSpace, table: LatencyTable) -> np.ndarray:
    """Table statistic per catalog block, NaN where the table has no entry."""
    out = np.full(len(space.catalog()), np.nan)
    for i, b in enumerate(space.catalog()):
        entry = table.entries.get(b.key)
        if entry is not None:
            out[i] = entry["latency_ms"]
    return out


@dataclass(frozen=True)
class Prediction:
    latency_ms: np.ndarray
    energy_mj: np.ndarray | None
    statistic: str
    energy_source: str | None
    energy_estimated: bool


class Predictor:
    """Vectorised latency/energy prediction for one table and the space it was made for."""

    def __init__(self, table: LatencyTable, space: SearchSpace, *, context: bool = True, calibrated: bool = True) -> None:
        self.table, self.space = table, space
        self.statistic = table.statistic
        self.keys = [b.key for b in space.catalog()]
        iso = _iso_values(space, table)
        fit = table.context.get("fit") if context else None
        self.overhead_ms = 0.0
        value = iso.copy()
        if fit:
            kinds, kind_of, elements = _catalog_features(space)
            beta = np.array([fit["per_kind"].get(k, {}).get("per_block_ms", 0.0) for k in kinds])
            gamma = np.array([fit["per_kind"].get(k, {}).get("per_100k_elements_ms", 0.0) for k in kinds])
            value = iso - beta[kind_of] - gamma[kind_of] * elements
            self.overhead_ms = float(fit["overhead_ms"])
        self.isolated_ms, self.value_ms = iso, value
        cal = table.calibration if calibrated else None
        self.scale, self.offset_ms = (float(cal["scale"]), float(cal["offset_ms"])) if cal else (1.0, 0.0)
        self.energy_mj: np.ndarray | None = None
        if table.energy.get("available"):
            e = np.array([table.entries.get(k, {}).get("energy_mj", np.nan) if k in table.entries else np.nan
                          for k in self.keys], dtype=float)
            ratio = np.clip(np.divide(value, iso, out=np.ones_like(iso), where=iso > 0), 0.0, None)
            self.energy_mj = e * ratio

    def predict_genes(self, genes: np.ndarray) -> Prediction:
        """Predict for an (n, n_genes) matrix of canonical genes; raises MissingEntryError."""
        idx, weight = self.space.block_slots(genes)
        used = weight > 0
        values = self.value_ms[idx]
        if np.isnan(values[used]).any():
            row, col = np.argwhere(np.isnan(values) & used)[0]
            arch = self.space.decode(np.atleast_2d(genes)[row])
            where = self.table.path or "the table"
            raise MissingEntryError(f"{where} has no entry '{self.keys[idx[row, col]]}', needed by {arch.string}")
        latency = (np.where(used, values, 0.0) * weight).sum(1) + self.overhead_ms
        latency = self.scale * latency + self.offset_ms
        energy = None
        if self.energy_mj is not None:
            e = self.energy_mj[idx]
            energy = (np.where(used, e, 0.0) * weight).sum(1)
        return Prediction(latency, energy, self.statistic, self.table.energy.get("source"),
                          bool(self.table.energy.get("estimated")))

    def predict(self, archs: Sequence[Architecture]) -> Prediction:
        return self.predict_genes(np.array([a.genes for a in archs], dtype=np.int64))

    def breakdown(self, arch: Architecture) -> list[dict[str, Any]]:
        """Per block of ``arch``: its key, isolated statistic and in-context value, in ms."""
        index = self.space.catalog_index()
        rows = []
        for b in self.space.blocks(arch):
            i = index[b.key]
            rows.append({"key": b.key, "isolated_ms": float(self.isolated_ms[i]), "in_context_ms": float(self.value_ms[i])})
        return rows
