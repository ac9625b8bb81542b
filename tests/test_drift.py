"""Drift sentinels, device conditions, the preflight and thread choice under contention."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hwnas.latency.drift import choose_sentinels, drift_factor
from hwnas.measure import conditions as cond
from hwnas.measure.timing import Protocol, measure

QUICK = Protocol(warmup_runs=2, warmup_s=0.0, min_runs=20, max_runs=40, max_seconds=10.0, burst=1)


def _spin(n: int):
    def run() -> None:
        sum(range(n))

    return run


class _SlowClock:
    """A perf_counter_ns whose elapsed time runs ``factor`` times faster than the real one: to the
    protocol, everything measured through it looks ``factor`` times slower."""

    def __init__(self, factor: float) -> None:
        import time

        self.factor, self._now, self._t0 = factor, time.perf_counter_ns, time.perf_counter_ns()

    def __call__(self) -> int:
        return self._t0 + int((self._now() - self._t0) * self.factor)


def test_the_drift_factor_recovers_a_slow_down_injected_through_the_clock() -> None:
    runners = [_spin(n) for n in (2_000, 8_000, 30_000, 60_000)]
    table = [s.p10_ms for s in measure(runners, QUICK)]
    for factor in (1.0, 1.35):
        now = [s.p10_ms for s in measure(runners, QUICK, clock=_SlowClock(factor))]
        drift = drift_factor(table, now)
        assert drift.factor == pytest.approx(factor, rel=0.15), drift
        assert drift.n == 4 and drift.low <= drift.factor <= drift.high
    assert drift.noticeable and "1.3" in drift.describe() and "slower" in drift.describe()
    assert not drift_factor([1.0, 2.0, 3.0], [1.01, 2.0, 2.98]).noticeable  # within noise: no warning
    assert drift_factor([1.0, 2.0], [0.5, 1.0]).describe().startswith("device runs 2.00x faster")


def test_sentinels_span_the_table_and_include_a_reference_model(tiny_table) -> None:
    from hwnas.latency.table import open_table

    table, space, _ = open_table(tiny_table.path)
    sentinels = choose_sentinels(table, space)
    blocks = [s for s in sentinels if s.job.kind == "block"]
    models = [s for s in sentinels if s.job.kind == "model"]
    assert len(models) == 1 and models[0].job.key in {m["arch"] for m in table.context["models"]}
    values = sorted(e["stats"][f"{table.statistic}_ms"] for e in table.entries.values())
    assert blocks[0].table_ms == values[0] and blocks[-1].table_ms == values[-1]  # the whole range
    assert choose_sentinels(table, space) == sentinels  # deterministic


def _fake_tree(root: Path, *, load: str = "0.05 0.10 0.10 1/100 1", governor: str | None = None,
               cur_khz: int | None = None, max_khz: int | None = None, temp_mc: int | None = None) -> Path:
    (root / "proc").mkdir(parents=True)
    (root / "proc" / "loadavg").write_text(load + "\n")
    (root / "proc" / "stat").write_text("cpu  10 0 10 100 0 0 0 0\ncpu0 5 0 5 50 0 0 0 0\ncpu1 5 0 5 50 0 0 0 0\n")
    for core in (0, 1):
        freq = root / "sys" / "devices" / "system" / "cpu" / f"cpu{core}" / "cpufreq"
        freq.mkdir(parents=True)
        if governor:
            (freq / "scaling_governor").write_text(governor + "\n")
        if cur_khz:
            (freq / "scaling_cur_freq").write_text(f"{cur_khz}\n")
        if max_khz:
            (freq / "cpuinfo_max_freq").write_text(f"{max_khz}\n")
    if temp_mc is not None:
        zone = root / "sys" / "class" / "thermal" / "thermal_zone0"
        zone.mkdir(parents=True)
        (zone / "temp").write_text(f"{temp_mc}\n")
    return root


def test_the_preflight_reads_a_fake_busy_machine_governor_and_heat(tmp_path: Path) -> None:
    quiet = cond.read_conditions(root=_fake_tree(tmp_path / "quiet", governor="performance", cur_khz=3_000_000,
                                                 max_khz=3_000_000, temp_mc=45_000), window_s=0.0, cores=[0, 1])
    assert quiet["governors"] == ["performance"] and quiet["freq_mhz"] == 3000.0 and quiet["temperature_c"] == 45.0
    assert cond.preflight(quiet) == []
    busy = cond.read_conditions(root=_fake_tree(tmp_path / "busy", load="3.50 3.1 2.0 4/100 1", governor="powersave",
                                                cur_khz=1_200_000, max_khz=3_000_000, temp_mc=91_000),
                                window_s=0.0, cores=[0, 1])
    text = "\n".join(cond.preflight(busy))
    assert "load average 3.50" in text and "governor powersave" in text and "1200 MHz of 3000 MHz" in text
    assert "heat: 91 C" in text
    bare = cond.read_conditions(root=tmp_path / "nothing", window_s=0.0, cores=[0])  # no /proc, no /sys: nothing known
    assert bare["load_1m"] is None and bare["busy_cores"] is None and cond.preflight(bare) == []


def test_busy_cores_come_from_two_samples_of_proc_stat() -> None:
    before = {0: (100, 1000), 1: (100, 1000), 2: (100, 1000)}
    after = {0: (190, 1100), 1: (110, 1100), 2: (160, 1100)}  # core 0 90% busy, 1 10%, 2 60%
    assert cond.busy_between(before, after) == [0, 2]
    assert cond.busy_between(before, after, cores=[1, 2]) == [2]


def test_thread_choice_follows_affinity_and_load() -> None:
    choose_threads = cond.choose_threads
    assert choose_threads({"usable_cores": [0, 1, 2, 3], "busy_cores": []}) == 4
    assert choose_threads({"usable_cores": [0, 1, 2, 3], "busy_cores": [1, 3]}) == 2
    assert choose_threads({"usable_cores": [2], "busy_cores": [2]}) == 1  # never zero
    assert choose_threads({"usable_cores": [0, 1], "busy_cores": [5]}) == 2  # busy elsewhere: not ours
    assert choose_threads({"usable_cores": [0, 1, 2, 3], "busy_cores": None}) == 4  # unknown load: every usable core
