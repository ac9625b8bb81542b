"""Predict whole-model latency and energy from a table, vectorised over populations.

A model's latency is the sum of its blocks' table entries less each block kind's fitted boundary
terms, plus one overhead (``hwnas.latency.correction``); a table without a fit predicts the plain
sum. Energy is summed the same way where the table holds it. ``Predictor.breakdown`` gives the
per-block terms of one architecture.

How it works, and why: ``docs/design.md`` (hwnas.latency.predictor).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hwnas.latency.correction import block_params, catalog_features, fit_context, iso_values
from hwnas.latency.records import KindTerms, TableEntry
from hwnas.latency.table import LatencyTable, MissingEntryError
from hwnas.spaces.base import Architecture, SearchSpace

__all__ = ["Prediction", "Predictor", "fit_context"]  # fit_context: the correction this predictor applies

@dataclass(frozen=True)
class Prediction:
    latency_ms: np.ndarray
    energy_mj: np.ndarray | None
    statistic: str
    energy_source: str | None
    energy_estimated: bool


def _energy(entry: TableEntry | None) -> float:
    return np.nan if entry is None or entry.energy_mj is None else float(entry.energy_mj)


class Predictor:
    """Vectorised latency/energy prediction for one table and the space it was made for."""

    def __init__(self, table: LatencyTable, space: SearchSpace, *, context: bool = True, calibrated: bool = True) -> None:
        self.table, self.space = table, space
        self.statistic = table.statistic
        self.keys = [b.key for b in space.catalog()]
        iso = iso_values(space, table)
        fit = table.context.fit if context else None
        self.overhead_ms = 0.0
        value = iso.copy()
        if fit:
            kinds, kind_of, elements = catalog_features(space)
            terms = [fit.per_kind.get(k, KindTerms()) for k in kinds]
            beta = np.array([t.per_block_ms for t in terms])
            gamma = np.array([t.per_100k_elements_ms for t in terms])
            delta = np.array([t.per_100k_params_ms or 0.0 for t in terms])
            value = iso - beta[kind_of] - gamma[kind_of] * elements
            if delta.any():  # tables fitted before the params term have none
                value = value - delta[kind_of] * block_params(space, table)
            self.overhead_ms = fit.overhead_ms
        self.isolated_ms, self.value_ms = iso, value
        cal = table.calibration if calibrated else None
        self.scale, self.offset_ms = (cal.scale, cal.offset_ms) if cal else (1.0, 0.0)
        self.energy_mj: np.ndarray | None = None
        if table.energy.available:
            e = np.array([_energy(table.entries.get(k)) for k in self.keys], dtype=float)
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
        return Prediction(latency, energy, self.statistic, self.table.energy.source, self.table.energy.estimated)

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
