"""The timing protocol, driven by a fake clock: stable, drifting and noisy series."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pytest

from hwnas.measure.timing import Protocol, measure, split_half_diff, summarize


class FakeClock:
    """A nanosecond clock that only moves when a fake inference runs."""

    def __init__(self) -> None:
        self.now = 0
        self.calls: list[int] = []

    def __call__(self) -> int:
        return self.now

    def runner(self, index: int, durations_ms: Iterator[float]) -> Callable[[], None]:
        def run() -> None:
            self.calls.append(index)
            self.now += int(next(durations_ms) * 1e6)
        return run


def constant(ms: float) -> Iterator[float]:
    while True:
        yield ms


def drifting(start_ms: float, per_run: float) -> Iterator[float]:
    t = start_ms
    while True:
        yield t
        t += per_run


def noisy(base_ms: float, seed: int) -> Iterator[float]:
    rng = np.random.default_rng(seed)
    while True:  # a floor with heavy right-tail spikes, like a shared machine
        yield base_ms * (1 + rng.exponential(0.02)) * (3.0 if rng.random() < 0.1 else 1.0)


P = Protocol(warmup_runs=3, warmup_s=0.0, min_runs=20, max_runs=200, burst=5, rel_tol=0.02, remeasure=1, min_span_s=0.0, sweeps=1)


def test_stable_series_stops_at_min_runs() -> None:
    clock = FakeClock()
    stats = measure([clock.runner(0, constant(1.5)), clock.runner(1, constant(0.25))], P, clock=clock)
    for s, ms in zip(stats, (1.5, 0.25)):
        assert s.stable and s.n_runs == P.min_runs and s.attempts == 1
        assert s.min_ms == s.p10_ms == s.p50_ms == s.p90_ms == pytest.approx(ms)
        assert s.std_ms == 0 and s.cv == 0
    # warm-up runs are not timed: 3 warm-ups + 20 timed runs per entry
    assert clock.calls.count(0) == P.warmup_runs + P.min_runs


def test_drifting_series_is_flagged_and_remeasured_not_dropped() -> None:
    clock = FakeClock()
    stats = measure([clock.runner(0, drifting(1.0, 0.01)), clock.runner(1, constant(1.0))], P, clock=clock)
    drift, steady = stats
    assert steady.stable
    assert not drift.stable and drift.n_runs == P.max_runs and drift.attempts == 2
    assert drift.split_half_diff > P.rel_tol
    assert drift.min_ms < drift.p50_ms < drift.p90_ms


def test_noisy_series_settles_on_its_floor() -> None:
    clock = FakeClock()
    (s,) = measure([clock.runner(0, noisy(2.0, 1))], Protocol(warmup_s=0, min_runs=50, max_runs=400, rel_tol=0.02, min_span_s=0, sweeps=1), clock=clock)
    assert s.stable
    assert s.p10_ms == pytest.approx(2.0, rel=0.02)  # the robust statistic sees the floor
    assert s.mean_ms > 1.1 * s.p10_ms  # the spikes are in the mean, not in the statistic
    assert s.cv > 0.1


def test_rounds_interleave_entries_and_rotate_their_order() -> None:
    clock = FakeClock()
    runners = [clock.runner(i, constant(1.0)) for i in range(3)]
    measure(runners, Protocol(warmup_runs=0, warmup_s=0, min_runs=10, max_runs=10, burst=1, min_span_s=0, sweeps=1), clock=clock)
    rounds = [clock.calls[i : i + 3] for i in range(0, len(clock.calls), 3)]
    assert rounds[0] == [0, 1, 2] and rounds[1] == [1, 2, 0] and rounds[2] == [2, 0, 1]
    assert all(sorted(r) == [0, 1, 2] for r in rounds)


def test_time_cap_ends_measurement_with_unstable_flags() -> None:
    clock = FakeClock()
    protocol = Protocol(warmup_runs=0, warmup_s=0, min_runs=20, max_runs=10_000, burst=5, max_seconds=1.0, remeasure=0, sweeps=1)
    (s,) = measure([clock.runner(0, drifting(10.0, 0.5))], protocol, clock=clock)
    assert not s.stable
    assert s.n_runs < 200  # stopped by the 1 s cap, not by max_runs
    assert clock.now >= 1e9


def test_timed_warmup_keeps_the_machine_busy_before_timing() -> None:
    clock = FakeClock()
    runners = [clock.runner(0, constant(0.1)), clock.runner(1, constant(0.1))]
    protocol = Protocol(warmup_runs=2, warmup_s=1.0, min_runs=10, max_runs=10, burst=5, min_span_s=0, sweeps=1)
    stats = measure(runners, protocol, clock=clock)
    untimed = clock.calls.count(0) - stats[0].n_runs
    assert untimed >= 5000  # 1 s of 0.1 ms runs, shared round robin by the two entries
    assert clock.calls[:4] == [0, 0, 1, 1] and clock.calls[4:8] == [0, 1, 0, 1]


def phased(clock: FakeClock, fast_ms: float, slow_ms: float, phase_s: float) -> Iterator[float]:
    """A shared host's core: alternating phases of ``phase_s`` seconds, slow first."""
    while True:
        yield slow_ms if int(clock.now / (phase_s * 1e9)) % 2 == 0 else fast_ms


def test_paced_rounds_see_past_a_slow_phase() -> None:
    """Ten 0.1 ms entries on a core that alternates 1 s slow (1.4x) and 1 s fast phases: unpaced,
    every entry is timed inside the first slow second and looks stable there; paced over 4 s,
    each entry's p10 is the fast phase's."""
    quick = Protocol(warmup_runs=0, warmup_s=0, min_runs=50, max_runs=300, burst=5, min_span_s=0, sweeps=1)
    clock = FakeClock()
    stats = measure([clock.runner(i, phased(clock, 0.1, 0.14, 1.0)) for i in range(10)], quick, clock=clock)
    assert all(s.stable and s.p10_ms == pytest.approx(0.14) for s in stats)
    assert clock.now < 1e9
    clock = FakeClock()
    paced = Protocol(**{**quick.to_dict(), "min_span_s": 4.0})
    stats = measure([clock.runner(i, phased(clock, 0.1, 0.14, 1.0)) for i in range(10)], paced, clock=clock)
    assert all(s.p10_ms == pytest.approx(0.1) for s in stats)
    assert all(s.n_runs <= paced.max_runs for s in stats)
    assert clock.now >= 4e9


def test_pacing_stops_when_the_clock_stands_still() -> None:
    runs = []
    (s,) = measure([lambda: runs.append(1)], Protocol(warmup_runs=0, warmup_s=0, min_runs=10, max_runs=10, min_span_s=4.0, sweeps=1),
                   clock=lambda: 0)
    assert s.n_runs == 10 and len(runs) < 100


def test_further_sweeps_see_past_a_slow_spell_and_confirm_the_fast_value() -> None:
    """A device 1.3x slow for its first 10 s, then itself. One sweep records the slow spell as the
    entries' latency. Two keep the faster sweep and say how far apart they were; allowed more,
    the entries whose two sweeps disagreed get a third, which confirms the fast value."""
    def spell(clock: FakeClock) -> Iterator[float]:
        while True:
            yield 0.13 if clock.now < 10e9 else 0.1

    def run(**kwargs: int) -> list:
        clock = FakeClock()
        protocol = Protocol(warmup_runs=0, warmup_s=0, min_runs=20, max_runs=100, burst=5, min_span_s=8.0, **kwargs)
        return measure([clock.runner(i, spell(clock)) for i in range(4)], protocol, clock=clock)

    assert all(s.p10_ms == pytest.approx(0.13) and s.sweeps == 1 for s in run(sweeps=1))
    assert all(s.p10_ms == pytest.approx(0.1) and s.sweep_spread == pytest.approx(0.3) and s.sweeps == 2
               for s in run(sweeps=2, max_sweeps=2))
    assert all(s.p10_ms == pytest.approx(0.1) and s.sweep_spread == pytest.approx(0.0) and s.sweeps == 3
               for s in run(sweeps=2, max_sweeps=4))


def test_statistics_and_split_half() -> None:
    x = np.arange(1, 101, dtype=float)
    s = summarize(x, "p10", 0.02)
    assert s.min_ms == 1 and s.p50_ms == pytest.approx(50.5) and s.p10_ms == pytest.approx(10.9)
    assert s.n_runs == 100 and not s.stable
    assert split_half_diff(np.array([1.0] * 10), "p10") == 0
    assert s.value("p90") == s.p90_ms


@pytest.mark.parametrize("kwargs", [{"statistic": "p42"}, {"min_runs": 1}, {"min_runs": 50, "max_runs": 10}, {"rel_tol": 0}, {"min_span_s": -1.0}, {"sweeps": 0}, {"sweeps": 5}, {"sweep_tol": 0}])
def test_bad_protocols_are_rejected(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        Protocol(**kwargs)
