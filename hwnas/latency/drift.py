"""Drift: is the device in the state it was profiled in?

A table is a snapshot of a device. Heat, frequency scaling and other work on the machine change
every latency by a common factor long before they change the order of models. So every later
measurement pass (``hwnas validate``, ``hwnas export``, ``hwnas predict --now``) re-times a few
*sentinels* from the table, interleaved with the models it measures: blocks spanning the table's
range of latencies, and whole reference models (context models of the profile at the quartiles of
their latencies). Whole models need their own: on a shared host they slowed down by several
percent in passes where the blocks did not. The ratio of
their statistic now to the table's is the device's **drift factor**; its 95% interval comes from
the spread of the sentinels' log-ratios (Student's t).

``factor > 1`` means the device now runs slower than when profiled. Predictions multiplied by the
factor are *drift-corrected*; reports give them beside the raw ones, never instead of them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hwnas.core.processes import scratch_folder
from hwnas.device.target import Target
from hwnas.latency.measurement import Job
from hwnas.latency.table import LatencyTable
from hwnas.spaces.base import SearchSpace

SENTINEL_BLOCKS = 6  # seconds of extra measurement per pass
SENTINEL_MODELS = 3
NOTICEABLE = 0.05  # a drift under 5% (or inside its own interval) is reported as none
FILLERS = 8  # random models timed beside the sentinels by predict --now, then discarded


@dataclass(frozen=True)
class Sentinel:
    """A table entry (a block) or a context model, and its statistic in the table (ms)."""

    job: Job
    table_ms: float


def choose_sentinels(table: LatencyTable, space: SearchSpace, blocks: int = SENTINEL_BLOCKS,
                     models: int = SENTINEL_MODELS) -> list[Sentinel]:
    """Stable blocks at evenly spaced ranks of the table's latencies, and the context models at the
    quartiles of theirs (the median one first). Deterministic: the same table gives the same sentinels."""
    stat = f"{table.statistic}_ms"
    catalog = {b.key: b for b in space.catalog()}
    stable = sorted(((e["stats"][stat], key) for key, e in table.entries.items()
                     if key in catalog and e.get("stats", {}).get("stable", True) and e["stats"].get(stat, 0) > 0))
    picks = sorted({int(round(i)) for i in np.linspace(0, len(stable) - 1, min(blocks, len(stable)))}) if stable else []
    out = [Sentinel(Job("block", stable[i][1], block=catalog[stable[i][1]]), float(stable[i][0])) for i in picks]
    timed = sorted((m["stats"][stat], m["arch"]) for m in table.context.get("models", [])
                   if m.get("stats") and m["stats"].get(stat, 0) > 0)
    ranks = [0.5, 0.25, 0.75, 0.125, 0.875][:models]
    for i in dict.fromkeys(int(q * len(timed)) for q in ranks if timed):  # few models: no repeats
        ms, arch = timed[i]
        out.append(Sentinel(Job("model", arch, arch=space.parse(arch)), float(ms)))
    return out


@dataclass(frozen=True)
class Drift:
    """Now / table for the sentinels: the geometric mean and its 95% interval."""

    factor: float
    low: float
    high: float
    n: int
    ratios: tuple[float, ...]

    @property
    def half_width(self) -> float:
        """The interval's half-width, relative to the factor (0.02: +-2%)."""
        return max(self.high / self.factor - 1, 1 - self.low / self.factor)

    @property
    def noticeable(self) -> bool:
        return abs(self.factor - 1) > max(NOTICEABLE, self.half_width)

    def describe(self) -> str:
        how = "slower" if self.factor >= 1 else "faster"
        x = self.factor if self.factor >= 1 else 1 / self.factor
        return f"device runs {x:.2f}x {how} than when profiled (sentinels +-{100 * self.half_width:.0f}%, n={self.n})"

    def warning(self) -> str | None:
        """The one line to print when the device is not in its profiled state, else None."""
        if not self.noticeable:
            return None
        return (f"{self.describe()}: drift-corrected errors are given beside the raw ones; "
                "re-profile, or find the load or heat that slows the device")

    def to_dict(self) -> dict[str, Any]:
        return {"factor": self.factor, "ci95": [self.low, self.high], "n": self.n, "ratios": list(self.ratios),
                "noticeable": self.noticeable, "describe": self.describe()}


def drift_factor(table_ms: Sequence[float], now_ms: Sequence[float]) -> Drift:
    """The drift factor of sentinels measured now against their table values."""
    from scipy import stats

    ratios = np.asarray(now_ms, dtype=float) / np.asarray(table_ms, dtype=float)
    ratios = ratios[np.isfinite(ratios) & (ratios > 0)]
    if not len(ratios):
        return Drift(1.0, 0.0, math.inf, 0, ())
    logs = np.log(ratios)
    mean = float(logs.mean())
    half = float(stats.t.ppf(0.975, len(logs) - 1) * logs.std(ddof=1) / math.sqrt(len(logs))) if len(logs) > 1 else math.inf
    return Drift(math.exp(mean), math.exp(mean - half), math.exp(mean + half), len(ratios), tuple(ratios.tolist()))


def measure_drift(table: LatencyTable, space: SearchSpace, target: Target, *, seed: int = 0,
                  fillers: int = FILLERS) -> tuple[Drift, list[Sentinel]]:
    """Time the table's sentinels on ``target`` (seconds) and return the drift. A few random
    models are timed with them and discarded: a pass of seven entries alone read the device
    1.1-1.2x slower than the interleaved passes of validate did, so the pass is given the
    composition of one."""
    from pathlib import Path

    from hwnas.core.threads import torch_threads
    from hwnas.latency.measurement import export_job, measure_files
    from hwnas.measure.timing import Protocol

    sentinels = choose_sentinels(table, space)
    if not sentinels:
        return drift_factor([], []), []
    extra = [Job("model", a.string, arch=a) for a in space.sample(np.random.default_rng(seed + 1), fillers)]
    protocol = Protocol(**table.protocol)
    with scratch_folder("sentinels") as tmp:
        with torch_threads(1):
            items = [export_job(j, space, target.spec, Path(tmp), seed) for j in [*extra, *(s.job for s in sentinels)]]
        stats, _ = measure_files(target.spec, protocol, items, seed=seed, target=target)
    now = [st.value(table.statistic) for st in stats[len(extra):]]
    return drift_factor([s.table_ms for s in sentinels], now), sentinels
