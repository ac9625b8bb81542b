"""Routes each metric of a candidate to its source, and runs the expensive ones with failure
handling: an evaluation that raises, returns NaN, runs out of memory or past its time limit gives
a failure reason instead of an exception, so the search records it and goes on."""

from __future__ import annotations

import contextlib
import math
import signal
import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from hwnas.core.errors import HwnasError
from hwnas.evaluation.accuracy import ACCURACY
from hwnas.evaluation.memory import MemoryMetrics
from hwnas.core.options import as_flag
from hwnas.evaluation.sources import (BenchmarkMetrics, FactsMetrics, MetricSource, MissingArchitectureError,
                                      TableMetrics)
from hwnas.optimize.config import ConfigError, RunConfig, SearchError
from hwnas.optimize.objectives import ObjectiveError, ObjectiveSet
from hwnas.spaces import SearchSpace
from hwnas.spaces.architecture import Architecture

Result = tuple[dict[str, float], str | None, float]  # metrics, failure reason, seconds


class CandidateEvaluator:
    """Routes each metric to its source and runs the expensive ones with failure handling."""

    def __init__(self, objectives: ObjectiveSet, sources: Sequence[MetricSource], *, time_limit_s: float | None = None) -> None:
        self.objectives = objectives
        self.time_limit_s = time_limit_s
        self.route: dict[str, MetricSource] = {}
        for metric in objectives.metrics:
            source = next((s for s in sources if metric in s.provides), None)
            if source is None:
                have = sorted({m for s in sources for m in s.provides})
                raise ConfigError(f"no source provides metric {metric!r} (available: {', '.join(have) or 'none'}; "
                                  "give --table or --device for latency_ms/energy_mj, --benchmark for benchmark columns)")
            self.route[metric] = source
        try:  # cheapness is the sources' to declare
            self.objectives = objectives.resolved(lambda m: self.route[m].is_cheap(m))
        except ObjectiveError as exc:
            raise ConfigError(str(exc)) from None
        self.cheap_metrics = [m for m in objectives.metrics if self.objectives.is_cheap(m)]
        self.expensive_metrics = [m for m in objectives.metrics if not self.objectives.is_cheap(m)]

    def _collect(self, metrics: list[str], archs: Sequence[Architecture], epochs: float | None = None
                 ) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for source in dict.fromkeys(self.route[m] for m in metrics):
            values = source.evaluate(archs) if epochs is None else source.evaluate_at(archs, epochs)
            for m in metrics:
                if self.route[m] is source:
                    out[m] = np.asarray(values[m], dtype=float)
        return out

    def cheap(self, archs: Sequence[Architecture]) -> dict[str, np.ndarray]:
        return self._collect(self.cheap_metrics, archs)

    def check_fidelities(self, levels: Sequence[float]) -> None:
        """Refuse (ConfigError) a multi-fidelity search whose expensive metrics' sources cannot be
        evaluated at every one of ``levels`` (epochs)."""
        for metric in self.expensive_metrics:
            source = self.route[metric]
            have = source.fidelities()
            if have is None:
                raise ConfigError(f"a multi-fidelity search varies training epochs, and {metric!r} comes from "
                                  f"{type(source).__name__}, which has none (use --accuracy train, or a benchmark "
                                  f"with learning-curve columns such as '{metric}@1')")
            missing = [f"{e:g}" for e in levels if have and e not in have]
            if missing:
                raise ConfigError(f"{metric!r}: the rungs need epochs {', '.join(missing)}, which the benchmark does "
                                  f"not hold (its learning-curve epochs: {', '.join(f'{e:g}' for e in have)})")

    def expensive(self, arch: Architecture, epochs: float | None = None) -> tuple[dict[str, float], str | None]:
        """The expensive metrics of one candidate (after ``epochs`` of training in a multi-fidelity
        search), and a failure reason (None if it succeeded)."""
        try:
            with _time_limit(self.time_limit_s):
                values = self._collect(self.expensive_metrics, [arch], epochs)
        except TimeoutError:
            return {}, f"time limit of {self.time_limit_s:g} s exceeded"
        except MemoryError:
            return {}, "out of memory"
        except MissingArchitectureError:
            raise  # the run's setup is wrong, not the candidate
        except HwnasError as exc:
            return {}, f"{type(exc).__name__}: {exc}"
        except Exception as exc:  # a candidate's own failure: record it and go on
            text = str(exc).splitlines()[0] if str(exc) else ""
            reason = "out of memory" if "out of memory" in text.lower() else f"{type(exc).__name__}: {text}"
            return {}, reason
        metrics = {m: float(v[0]) for m, v in values.items()}
        bad = [m for m, v in metrics.items() if not math.isfinite(v)]
        if bad:
            return metrics, f"{', '.join(bad)} is NaN or infinite"
        return metrics, None

    def timed(self, arch: Architecture, epochs: float | None = None) -> Result:
        """``expensive`` with its wall time: what executors return for each candidate."""
        start = time.perf_counter()
        values, reason = self.expensive(arch, epochs)
        return values, reason, time.perf_counter() - start


@contextlib.contextmanager
def _time_limit(seconds: float | None) -> Iterator[None]:
    if not seconds or not hasattr(signal, "setitimer"):
        yield
        return

    def on_alarm(_signum: int, _frame: Any) -> None:
        raise TimeoutError

    try:
        previous = signal.signal(signal.SIGALRM, on_alarm)
    except ValueError:  # not the main thread: no alarm, no limit
        yield
        return
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def build_sources(config: RunConfig, space: SearchSpace) -> tuple[list[MetricSource], dict[str, Any]]:
    """Metric sources from a run config; returns them and the device fingerprint (if a table)."""
    from hwnas.latency.predictor import Predictor
    from hwnas.latency.table import open_table
    from hwnas.measure.session import RuntimeSettings

    sources: list[MetricSource] = []
    fingerprint: dict[str, Any] = {}
    precision = "fp32"  # of the memory metrics: the table's, when there is one
    runtime: Any = None
    machine: str | None = None
    if config.table:
        table, table_space, _ = open_table(config.table, allow_mismatch=config.allow_mismatch)
        if table_space.config() != space.config() or table_space.name != space.name:
            raise SearchError(f"{config.table} was profiled for {table_space!r}, not {space!r}")
        precision = table.precision
        runtime = RuntimeSettings.from_dict(table.device.get("runtime", {}))
        machine = table.fingerprint.get("machine")
        if as_flag(config.accuracy_options.get("quantized", False)) != (precision == "int8") and config.accuracy == "train":
            raise SearchError(f"{config.table}: a {precision} table; an int8 search needs an int8 table and "
                              "--accuracy-opt quantized=1, an fp32 search neither (profile with --precision int8)")
        sources.append(TableMetrics(Predictor(table, space)))
        fingerprint = table.fingerprint
    if config.benchmark:
        # the benchmark as the accuracy estimator: its expensive objectives' columns stand for trainings
        expensive = config.objectives.expensive if config.accuracy == "table" else ()
        benchmark = BenchmarkMetrics(config.benchmark, space, columns=config.columns or None, expensive=expensive)
        benchmark.check_values(config.objectives.metrics, config.objectives.costs)
        sources.append(benchmark)
    if config.accuracy and config.accuracy != "table":
        sources.insert(0, ACCURACY.get(config.accuracy)(space, **config.accuracy_options))
    sources.append(FactsMetrics(space))
    sources.append(MemoryMetrics(space, precision, runtime, machine))
    return sources, fingerprint


def make_evaluator(config: RunConfig, space: SearchSpace) -> tuple[CandidateEvaluator, list[MetricSource], dict[str, Any]]:
    """The evaluator of a run, with its sources and the device fingerprint."""
    sources, fingerprint = build_sources(config, space)
    return CandidateEvaluator(config.objectives, sources, time_limit_s=config.time_limit_s), sources, fingerprint
