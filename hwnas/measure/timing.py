"""hwnas's timing protocol: warm-up, interleaved rounds, a stability rule, caps, re-measurement.

Every entry is warmed up, then timed in rounds that visit all entries in rotating order, paced
so that each entry's samples span ``min_span_s``; an entry stops when the two halves of its
samples agree within ``rel_tol`` (or at ``max_runs``/``max_seconds``). Each entry is measured in
``sweeps`` passes and keeps its fastest, with more passes where two disagree by ``sweep_tol``;
unstable entries are re-measured and flagged, never dropped. The table predicts with one
statistic of the samples (p10 by default). Raises ProtocolError for an impossible protocol.

How it works, and why: ``docs/design.md`` (hwnas.measure.timing).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from hwnas.core.errors import HwnasError

STATISTICS = ("min", "p10", "p50", "p90", "mean")


class ProtocolError(HwnasError, ValueError):
    """Timing-protocol settings that cannot work together."""
Clock = Callable[[], int]  # nanoseconds


@dataclass(frozen=True)
class Protocol:
    """Settings of the timing protocol (recorded in every table)."""

    warmup_runs: int = 10
    warmup_s: float = 3.0
    min_runs: int = 50
    max_runs: int = 300
    burst: int = 5
    rel_tol: float = 0.02
    max_seconds: float = 1800.0
    remeasure: int = 1
    statistic: str = "p10"
    min_span_s: float = 4.0  # spans several of a busy machine's speed phases (docs/design.md)
    sweeps: int = 2  # passes over every entry; the fastest is kept (see "Sweeps")
    max_sweeps: int = 4  # for entries whose two fastest sweeps disagree by more than sweep_tol
    sweep_tol: float = 0.05

    def __post_init__(self) -> None:
        if self.statistic not in STATISTICS:
            raise ProtocolError(f"statistic {self.statistic!r} is not one of {', '.join(STATISTICS)}")
        if not (1 <= self.burst and 2 <= self.min_runs <= self.max_runs and self.warmup_runs >= 0 and self.warmup_s >= 0):
            raise ProtocolError("protocol needs burst >= 1, 2 <= min_runs <= max_runs, warmup_runs >= 0")
        if not self.rel_tol > 0 or not self.max_seconds > 0 or self.remeasure < 0 or not 0 <= self.min_span_s < math.inf:
            raise ProtocolError("protocol needs rel_tol > 0, max_seconds > 0, remeasure >= 0 and 0 <= min_span_s")
        if not 1 <= self.sweeps <= self.max_sweeps or not self.sweep_tol > 0:
            raise ProtocolError("protocol needs 1 <= sweeps <= max_sweeps and sweep_tol > 0")
        limits = {"max_seconds": 86_400.0, "warmup_s": 3_600.0, "min_span_s": 3_600.0, "max_runs": 10_000_000,
                  "warmup_runs": 1_000_000, "max_sweeps": 1_000, "remeasure": 1_000, "burst": 1_000_000}
        for key, most in limits.items():
            if not getattr(self, key) <= most:
                raise ProtocolError(f"protocol needs {key} <= {most:g}, got {getattr(self, key)!r}")

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class Stats:
    """Summary of one entry's samples, in milliseconds."""

    min_ms: float
    p10_ms: float
    p50_ms: float
    p90_ms: float
    mean_ms: float
    std_ms: float
    cv: float
    n_runs: int
    stable: bool
    split_half_diff: float  # |stat(first half) - stat(second half)| / stat(all)
    attempts: int = 1
    sweep_spread: float = 0.0  # second-fastest sweep's statistic / the fastest's - 1
    sweeps: int = 1

    def value(self, statistic: str) -> float:
        return float(getattr(self, f"{statistic}_ms"))

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def statistic_of(samples_ms: np.ndarray, statistic: str) -> float:
    if statistic == "min":
        return float(np.min(samples_ms))
    if statistic == "mean":
        return float(np.mean(samples_ms))
    return float(np.percentile(samples_ms, int(statistic[1:])))


def split_half_diff(samples_ms: np.ndarray, statistic: str) -> float:
    """Relative disagreement of the statistic between the first and second half of the samples."""
    half = len(samples_ms) // 2
    if half < 1:
        return math.inf
    whole = statistic_of(samples_ms, statistic)
    a, b = statistic_of(samples_ms[:half], statistic), statistic_of(samples_ms[half:], statistic)
    return abs(a - b) / whole if whole > 0 else (0.0 if a == b else math.inf)


def summarize(samples_ms: Sequence[float], statistic: str, rel_tol: float, *, attempts: int = 1) -> Stats:
    x = np.asarray(samples_ms, dtype=np.float64)
    mean = float(x.mean())
    std = float(x.std(ddof=1)) if len(x) > 1 else 0.0
    diff = split_half_diff(x, statistic)
    return Stats(
        min_ms=float(x.min()), p10_ms=float(np.percentile(x, 10)), p50_ms=float(np.percentile(x, 50)),
        p90_ms=float(np.percentile(x, 90)), mean_ms=mean, std_ms=std, cv=std / mean if mean > 0 else 0.0,
        n_runs=len(x), stable=bool(diff <= rel_tol), split_half_diff=float(diff), attempts=attempts,
    )


@dataclass
class _Entry:
    index: int
    samples: list[float] = field(default_factory=list)
    done: bool = False


def _pass(
    runners: Sequence[Callable[[], object]],
    indices: Sequence[int],
    protocol: Protocol,
    clock: Clock,
    deadline_ns: int,
    on_done: Callable[[int, list[float]], None] | None,
    warm: bool = False,  # the device has just been busy (a later sweep): skip the timed warm-up
) -> dict[int, list[float]]:
    entries = [_Entry(i) for i in indices]
    start = clock()
    for e in entries:
        for _ in range(protocol.warmup_runs):
            runners[e.index]()
    # then keep the machine busy, round robin, until warmup_s has passed since the start
    while entries and not warm and clock() - start < protocol.warmup_s * 1e9:
        for e in entries:
            runners[e.index]()
    # a round lasts at least this long, so that min_runs samples span min_span_s (see "Paced rounds")
    round_ns = protocol.min_span_s * 1e9 * protocol.burst / protocol.min_runs
    rnd = 0
    while True:
        active = [e for e in entries if not e.done]
        if not active:
            break
        start = rnd % len(active)
        order = active[start:] + active[:start]  # rotate the visiting order
        began = clock()
        for e in order:
            run = runners[e.index]
            for _ in range(protocol.burst):
                t0 = clock()
                run()
                e.samples.append((clock() - t0) / 1e6)
        _fill(runners, order, protocol.burst, clock, began + round_ns, deadline_ns)
        rnd += 1
        out_of_time = clock() >= deadline_ns
        for e in active:
            n = len(e.samples)
            stable = n >= protocol.min_runs and split_half_diff(np.asarray(e.samples), protocol.statistic) <= protocol.rel_tol
            if stable or n >= protocol.max_runs or (out_of_time and n >= 2):
                e.done = True
                if on_done:
                    on_done(e.index, e.samples)
    return {e.index: e.samples for e in entries}


def _fill(runners: Sequence[Callable[[], object]], order: Sequence[_Entry], burst: int, clock: Clock,
          until_ns: float, deadline_ns: int) -> None:
    """Untimed bursts of the round's entries until ``until_ns``; stops if the clock stands still."""
    while True:
        now = clock()
        if now >= until_ns or now >= deadline_ns:
            return
        for e in order:
            for _ in range(burst):
                runners[e.index]()
        if clock() == now:  # an injected clock that runs do not advance: nothing to pace
            return


def _sweep_again(runners: Sequence[Callable[[], object]], stats: dict[int, Stats], protocol: Protocol, clock: Clock,
                 deadline: int) -> dict[int, Stats]:
    """Further sweeps (see "Sweeps"): every entry until ``sweeps``, then those whose two fastest
    sweeps disagree, until ``max_sweeps``. Each entry keeps its fastest sweep."""
    value = {i: [s.value(protocol.statistic)] for i, s in stats.items()}

    def unconfirmed(i: int) -> bool:  # one sweep (sweeps = 1) has nothing to disagree with
        a, b = sorted(value[i])[:2] if len(value[i]) > 1 else (1.0, 1.0)
        return not (a > 0 and b / a - 1 <= protocol.sweep_tol)

    for sweep in range(2, protocol.max_sweeps + 1):
        todo = list(stats) if sweep <= protocol.sweeps else [i for i in stats if unconfirmed(i)]
        if not todo or clock() >= deadline:
            break
        for i, s in _pass(runners, todo, protocol, clock, deadline, None, warm=True).items():
            if len(s) < 2:
                continue
            new = summarize(s, protocol.statistic, protocol.rel_tol)
            value[i].append(new.value(protocol.statistic))
            best = new if value[i][-1] < min(value[i][:-1]) else stats[i]
            a, b = sorted(value[i])[:2]
            stats[i] = Stats(**{**best.to_dict(), "sweep_spread": b / a - 1 if a > 0 else 0.0, "sweeps": len(value[i])})
    return stats


def measure(
    runners: Sequence[Callable[[], object]],
    protocol: Protocol = Protocol(),
    *,
    clock: Clock = time.perf_counter_ns,
    on_done: Callable[[int, Stats], None] | None = None,
) -> list[Stats]:
    """Time each runner (one inference per call) with the protocol; returns one Stats per runner.

    ``on_done(i, stats)`` is called as soon as runner i's first pass ends, with its stats then
    (for progress bars, and for saving finished entries before the others are done); entries
    re-measured later are returned with their final stats.
    """
    if not runners:
        return []
    deadline = clock() + int(protocol.max_seconds * 1e9)

    def done(i: int, s: list[float]) -> None:
        if on_done:
            on_done(i, summarize(s, protocol.statistic, protocol.rel_tol))

    samples = _pass(runners, range(len(runners)), protocol, clock, deadline, done)
    stats = {i: summarize(s, protocol.statistic, protocol.rel_tol) for i, s in samples.items()}
    stats = _sweep_again(runners, stats, protocol, clock, deadline)
    for attempt in range(2, protocol.remeasure + 2):
        unstable = [i for i, s in stats.items() if not s.stable]
        if not unstable or clock() >= deadline:
            break
        again = _pass(runners, unstable, protocol, clock, clock() + int(protocol.max_seconds * 1e9), None)
        for i, s in again.items():
            new = summarize(s, protocol.statistic, protocol.rel_tol, attempts=attempt)
            old = stats[i]
            best = new if new.split_half_diff < old.split_half_diff else old
            stats[i] = Stats(**{**best.to_dict(), "attempts": attempt, "sweep_spread": old.sweep_spread,
                                "sweeps": old.sweeps})
    return [stats[i] for i in range(len(runners))]
