"""Drift: is the device in the state it was profiled in?

``factor > 1`` means the device now runs slower than when profiled. Predictions multiplied by the
factor are *drift-corrected*; reports give them beside the raw ones, never instead of them.

How it works, and why: ``docs/design.md`` (hwnas.latency.drift).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from hwnas.core.processes import scratch_folder
from hwnas.device.target import Item, Target
from hwnas.latency.measurement import Job
from hwnas.latency.table import LatencyTable
from hwnas.measure.timing import Protocol, Stats
from hwnas.spaces.base import SearchSpace

SENTINEL_BLOCKS = 6  # seconds of extra measurement per pass
SENTINEL_MODELS = 5
NOTICEABLE = 0.05  # a drift under 5% (or inside its own interval) is reported as none
FILLERS = 8  # random models timed beside the sentinels by predict --now, then discarded


def quick_protocol(protocol: Protocol) -> Protocol:
    """The table's protocol, shortened for a drift check (``predict --now``): a shorter warm-up and
    window, no stability extension, at most two sweeps and no re-measurement. The drift is a
    geometric mean over a dozen sentinels, so the per-entry precision the table needs is not needed
    here; two sweeps stay so that "fastest sweep" means what it means in the table."""
    return replace(protocol, warmup_s=min(protocol.warmup_s, 1.0), min_span_s=min(protocol.min_span_s, 2.0),
                   max_runs=protocol.min_runs, sweeps=min(2, protocol.sweeps), max_sweeps=min(2, protocol.sweeps),
                   remeasure=0)


@dataclass(frozen=True)
class Sentinel:
    """A table entry (a block) or a context model, and its statistic in the table (ms)."""

    job: Job
    table_ms: float


def choose_sentinels(table: LatencyTable, space: SearchSpace, blocks: int = SENTINEL_BLOCKS,
                     models: int = SENTINEL_MODELS) -> list[Sentinel]:
    """Stable blocks at evenly spaced ranks of the table's latencies, and context models spread
    over theirs (the median one first, then the 10th, 30th, 70th and 90th percentiles). Deterministic: the same table gives the same sentinels."""
    stat = f"{table.statistic}_ms"
    catalog = {b.key: b for b in space.catalog()}
    stable = sorted(((float(e.stats[stat]), key) for key, e in table.entries.items()  # type: ignore[arg-type]
                     if key in catalog and e.stable and float(e.stats.get(stat, 0) or 0) > 0))
    picks = sorted({int(round(i)) for i in np.linspace(0, len(stable) - 1, min(blocks, len(stable)))}) if stable else []
    out = [Sentinel(Job("block", stable[i][1], block=catalog[stable[i][1]]), float(stable[i][0])) for i in picks]
    timed = sorted((float(m.stats[stat]), m.arch) for m in table.context.models  # type: ignore[arg-type]
                   if m.stats and float(m.stats.get(stat, 0) or 0) > 0)
    ranks = [0.5, 0.1, 0.3, 0.7, 0.9][:models]
    for i in dict.fromkeys(int(q * len(timed)) for q in ranks if timed):  # few models: no repeats
        ms, arch = timed[i]
        out.append(Sentinel(Job("model", arch, arch=space.parse(arch)), float(ms)))
    return out


@dataclass(frozen=True)
class ModelTrend:
    """Whole-model sentinels: log(now / table) = log_factor + slope * (log(ms) - log_center_ms)."""

    log_factor: float
    slope: float  # 0 where the fitted slope's 95% interval includes zero
    log_center_ms: float
    low_ms: float
    high_ms: float
    n: int

    def at(self, latency_ms: np.ndarray) -> np.ndarray:
        x = np.log(np.clip(np.asarray(latency_ms, dtype=float), self.low_ms, self.high_ms))
        return np.exp(self.log_factor + self.slope * (x - self.log_center_ms))


def _model_trend(table_ms: np.ndarray, ratios: np.ndarray) -> ModelTrend | None:
    from scipy import stats

    if len(ratios) < 3:
        return None
    x, y = np.log(table_ms), np.log(ratios)
    center = float(x.mean())
    fit = stats.linregress(x - center, y) if np.ptp(x) > 0 else None
    slope = 0.0
    if fit is not None and len(x) > 3:  # a slope from three points has one degree of freedom: too loose
        half = float(stats.t.ppf(0.975, len(x) - 2) * fit.stderr)
        slope = float(fit.slope) if abs(fit.slope) > half else 0.0
    return ModelTrend(float(y.mean()), slope, center, float(table_ms.min()), float(table_ms.max()), len(ratios))


@dataclass(frozen=True)
class Drift:
    """Now / table for the sentinels: the geometric mean and its 95% interval, and the trend of the
    whole-model sentinels with their size."""

    factor: float
    low: float
    high: float
    n: int
    ratios: tuple[float, ...]
    models: ModelTrend | None = None

    def at(self, latency_ms: np.ndarray | float) -> np.ndarray:
        """The factor for whole models predicted at ``latency_ms``: the model sentinels' trend
        where there are three or more, else the overall factor."""
        if self.models is None:
            return np.full(np.shape(latency_ms), self.factor)
        return self.models.at(latency_ms)

    @property
    def half_width(self) -> float:
        """The interval's half-width, relative to the factor (0.02: +-2%)."""
        return max(self.high / self.factor - 1, 1 - self.low / self.factor)

    @property
    def noticeable(self) -> bool:
        if abs(self.factor - 1) > max(NOTICEABLE, self.half_width):
            return True
        ends = self.at(np.array([self.models.low_ms, self.models.high_ms])) if self.models else np.ones(2)
        return bool(np.any(np.abs(ends - 1) > NOTICEABLE))

    def describe(self) -> str:
        how = "slower" if self.factor >= 1 else "faster"
        x = self.factor if self.factor >= 1 else 1 / self.factor
        text = f"device runs {x:.2f}x {how} than when profiled (sentinels +-{100 * self.half_width:.0f}%, n={self.n})"
        m = self.models
        if m is not None:
            lo, hi = self.at(np.array([m.low_ms, m.high_ms]))
            text += (f"; whole models {lo:.2f}x at {m.low_ms:.2f} ms to {hi:.2f}x at {m.high_ms:.2f} ms" if m.slope
                     else f"; whole models {math.exp(m.log_factor):.2f}x")
        return text

    def warning(self) -> str | None:
        """The one line to print when the device is not in its profiled state, else None."""
        if not self.noticeable:
            return None
        pct = 100 * abs(self.factor - 1)
        meaning = (f"predictions on this device are currently {pct:.0f}% "
                   f"{'optimistic' if self.factor >= 1 else 'pessimistic'}")
        return (f"{meaning} ({self.describe()}): drift-corrected errors are given beside the raw ones; "
                "re-profile, or find the load or heat that changes the device")

    def to_dict(self) -> dict[str, Any]:
        m = self.models
        models = None if m is None else {
            "factor": math.exp(m.log_factor), "slope_per_log_ms": m.slope, "center_ms": math.exp(m.log_center_ms),
            "range_ms": [m.low_ms, m.high_ms], "n": m.n}
        return {"factor": self.factor, "ci95": [self.low, self.high], "n": self.n, "ratios": list(self.ratios),
                "models": models, "noticeable": self.noticeable, "describe": self.describe()}


def drift_factor(table_ms: Sequence[float], now_ms: Sequence[float], is_model: Sequence[bool] | None = None) -> Drift:
    """The drift factor of sentinels measured now against their table values; ``is_model`` marks
    the whole-model sentinels, whose trend with size corrects whole models (see the module docstring)."""
    from scipy import stats

    table = np.asarray(table_ms, dtype=float)
    ratios = np.asarray(now_ms, dtype=float) / table
    models = np.asarray(is_model if is_model is not None else [False] * len(ratios), dtype=bool)
    ok = np.isfinite(ratios) & (ratios > 0)
    table, ratios, models = table[ok], ratios[ok], models[ok]
    if not len(ratios):
        return Drift(1.0, 0.0, math.inf, 0, ())
    logs = np.log(ratios)
    mean = float(logs.mean())
    half = float(stats.t.ppf(0.975, len(logs) - 1) * logs.std(ddof=1) / math.sqrt(len(logs))) if len(logs) > 1 else math.inf
    return Drift(math.exp(mean), math.exp(mean - half), math.exp(mean + half), len(ratios), tuple(ratios.tolist()),
                 _model_trend(table[models], ratios[models]))


def measure_drift(table: LatencyTable, space: SearchSpace, target: Target, *, seed: int = 0,
                  fillers: int = FILLERS, quick: bool = True) -> tuple[Drift, list[Sentinel]]:
    """Time the table's sentinels on ``target`` and return the drift (``measure_beside`` with
    nothing beside them). ``quick`` times them with ``quick_protocol`` (seconds), and confirms a
    noticeable drift with a second quick pass, each sentinel keeping its faster pass (the table's
    "fastest sweep"; why: docs/benchmarks/latency.md). ``quick=False`` uses the table's own
    protocol."""
    if not quick:
        return _timed(table, space, target, (), seed, fillers, None)[:2]
    drift, sentinels, _, now = _timed(table, space, target, (), seed, fillers, quick_protocol(table.protocol))
    if drift.noticeable:  # a spell of a few seconds is not the device's state: look again before saying so
        again = _timed(table, space, target, (), seed, fillers, quick_protocol(table.protocol))[3]
        drift = _drift_of(sentinels, np.minimum(now, again))
    return drift, sentinels


def measure_beside(table: LatencyTable, space: SearchSpace, target: Target, items: Sequence[Item], *, seed: int = 0,
                   fillers: int = FILLERS, protocol: Protocol | None = None) -> tuple[Drift, list[Sentinel], list[Stats]]:
    """Time ``items`` (ONNX files with their input shapes) in one interleaved pass with the table's
    sentinels, and return the drift, the sentinels and the items' statistics: a file timed so can be
    put in the table's terms (divided by the drift at its latency), whatever the device's state now.
    A few random models are timed with them and discarded: a pass of seven entries alone read the
    device 1.1-1.2x slower than the interleaved passes of validate did, so the pass is given the
    composition of one. ``protocol`` defaults to the table's; sentinel and filler files come from
    the export cache (``export_cached``)."""
    drift, sentinels, stats, _ = _timed(table, space, target, items, seed, fillers, protocol)
    return drift, sentinels, stats


def _drift_of(sentinels: Sequence[Sentinel], now_ms: Sequence[float]) -> Drift:
    return drift_factor([s.table_ms for s in sentinels], now_ms, [s.job.kind == "model" for s in sentinels])


def _timed(table: LatencyTable, space: SearchSpace, target: Target, items: Sequence[Item], seed: int, fillers: int,
           protocol: Protocol | None) -> tuple[Drift, list[Sentinel], list[Stats], np.ndarray]:
    """One interleaved pass (``measure_beside``); also the sentinels' statistics now (ms)."""
    from pathlib import Path

    from hwnas.core.threads import torch_threads
    from hwnas.latency.measurement import export_cached, measure_files

    sentinels = choose_sentinels(table, space)
    extra = [Job("model", a.string, arch=a) for a in space.sample(np.random.default_rng(seed + 1), fillers)]
    with scratch_folder("sentinels") as tmp:
        with torch_threads(1):
            timed = [export_cached(j, space, target.spec, seed, Path(tmp)) for j in [*extra, *(s.job for s in sentinels)]]
        stats, _ = measure_files(target.spec, protocol or table.protocol, [*timed, *items], seed=seed, target=target)
    k = len(extra) + len(sentinels)
    now = np.array([st.value(table.statistic) for st in stats[len(extra):k]], dtype=float)
    return _drift_of(sentinels, now), sentinels, list(stats[k:]), now
