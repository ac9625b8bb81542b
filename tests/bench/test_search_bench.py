"""Search-cost benchmarks (`make bench`): each asserts its target and writes what it measured to
bench-results/. The strategies' quality against random search is `hwnas bench` itself
(docs/benchmarks/search.md gives the command)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest

from hwnas.evaluation.sources import BenchmarkMetrics, Evaluation
from hwnas.optimize.objectives import objectives_from_specs
from hwnas.optimize.strategies import STRATEGIES
from hwnas.spaces import get_space

pytestmark = pytest.mark.bench
ROOT = Path(__file__).resolve().parents[2]
TABLE = Path(os.environ.get("HWNAS_BENCH_TABLE", ROOT.parent / "shared" / "benchmarks" / "nb201_ninapro_pi5.csv"))


def test_ask_tell_overhead_per_candidate() -> None:
    """Strategy cost alone (no evaluation): ask/tell for populations of 100."""
    space = get_space("nb201", input_shape="3x32x32")
    objectives = objectives_from_specs(["accuracy:max", "latency_ms:min"])
    rng_vals = np.random.default_rng(0)
    out = {}
    def cheap(archs):  # what a latency table would give: every candidate's latency, at once
        return {"latency_ms": np.array([1.0 + sum(a.genes) for a in archs], dtype=float)}

    for name in STRATEGIES.names():
        opts = {"random": {"batch": 100}, "nsga2": {"pop_size": 100}, "rl": {"batch": 100},
                "evolution": {"population": 100, "batch": 100}, "progressive": {"beam": 100},
                "bo": {"batch": 100}}[name]
        strategy = STRATEGIES.get(name).create(space, objectives, np.random.default_rng(1), opts, cheap=cheap)
        n, t = 0, 0.0
        for _ in range(5):
            t0 = time.perf_counter()
            batch = strategy.ask()
            t += time.perf_counter() - t0
            evals = [Evaluation(a, {"accuracy": float(rng_vals.uniform(80, 95)), "latency_ms": 1.0 + sum(a.genes)},
                                expensive=True) for a in batch]
            t0 = time.perf_counter()
            strategy.tell(evals)
            t += time.perf_counter() - t0
            n += len(batch)
        out[name] = {"ms_per_candidate": 1000 * t / n, "candidates": n}
    (ROOT / "bench-results").mkdir(exist_ok=True)
    (ROOT / "bench-results" / "search-overhead.json").write_text(json.dumps(out, indent=1) + "\n")
    print("\n== ask/tell overhead, populations of 100 (target <= 1 ms per candidate) ==")
    for name, r in out.items():
        print(f"{name:<12} {r['ms_per_candidate']:.3f} ms per candidate")
    slow = {n: round(r["ms_per_candidate"], 2) for n, r in out.items() if r["ms_per_candidate"] > 1.0}
    assert not slow, f"ask/tell over 1 ms per candidate: {slow}"


@pytest.mark.skipif(not TABLE.is_file(), reason="the development table is not beside this checkout")
def test_bo_ask_time_on_the_whole_nb201_pool() -> None:
    """One `bo` ask (batch 1) over all 6,466 nb201 classes after 100 evaluations: surrogate fit,
    pool prediction and EHVI. Target: under 1 s on 2 cores."""
    space = get_space("nb201", input_shape="3x32x32")
    objectives = objectives_from_specs(["accuracy:max", "pi5_onnx_latency_ms:min"])
    table = BenchmarkMetrics(TABLE, space)

    def cheap(archs):
        return {"pi5_onnx_latency_ms": table.evaluate(archs)["pi5_onnx_latency_ms"]}

    strategy = STRATEGIES.get("bo").create(space, objectives, np.random.default_rng(0), {"batch": 1}, cheap=cheap)
    times = []
    while len(strategy.obs_arch) < 110:
        t0 = time.perf_counter()
        batch = strategy.ask()
        times.append(time.perf_counter() - t0)
        values = table.evaluate(batch)
        strategy.tell([Evaluation(a, {m: float(values[m][i]) for m in ("accuracy", "pi5_onnx_latency_ms")}, expensive=True)
                       for i, a in enumerate(batch)])
    late = times[-10:]
    out = {"pool": space.n_distinct(), "ask_s_median_after_100": float(np.median(late)), "ask_s_max_after_100": float(max(late))}
    (ROOT / "bench-results").mkdir(exist_ok=True)
    (ROOT / "bench-results" / "bo-ask.json").write_text(json.dumps(out, indent=1) + "\n")
    print(f"\n== bo ask over the {out['pool']} nb201 classes after 100 evaluations: median {out['ask_s_median_after_100']:.3f} s, "
          f"max {out['ask_s_max_after_100']:.3f} s (target < 1 s) ==")
    assert out["ask_s_median_after_100"] < 1.0
