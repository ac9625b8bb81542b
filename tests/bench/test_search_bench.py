"""Search benchmarks (issue 4): `make bench`. Numbers are printed and written to
bench-results/search-*.json; targets are reported, not asserted.

On the development table (NAS-Bench-201 cells, NinaPro accuracy, Raspberry Pi 5 ONNX Runtime
latency), for each strategy beside random: the mean over 20 seeds, at 100 accuracy evaluations,
of the hypervolume normalised to the table's true front, and of the budget regret averaged over
budgets at the 10/25/50/75% latency quantiles.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest

from hwnas.core.pareto import budget_regret, non_dominated, normalized_hypervolume
from hwnas.evaluation.sources import BenchmarkMetrics, Evaluation
from hwnas.optimize.loop import make_config, run_search
from hwnas.optimize.objectives import objectives_from_specs
from hwnas.optimize.strategies import STRATEGIES
from hwnas.spaces import NB201Space, get_space

pytestmark = pytest.mark.bench
ROOT = Path(__file__).resolve().parents[2]
TABLE = Path(os.environ.get("HWNAS_BENCH_TABLE", ROOT.parent / "shared" / "benchmarks" / "nb201_ninapro_pi5.csv"))
SEEDS = int(os.environ.get("HWNAS_BENCH_SEEDS", "20"))
EVALS = 100


def _true_problem(latency: str):
    bench = BenchmarkMetrics(TABLE, NB201Space)
    acc, lat = bench.column("accuracy"), bench.column(latency)
    F = np.stack([-acc, lat], 1)
    ideal, nadir = F.min(0), F.max(0)
    return acc, lat, F[non_dominated(F)], ideal, nadir


@pytest.mark.skipif(not TABLE.is_file(), reason="the development table is not beside this checkout")
@pytest.mark.parametrize("latency", ["pi5_onnx_latency_ms", "pi5_onnx_energy_mj"])
def test_strategies_against_random(latency: str, tmp_path: Path) -> None:
    acc, lat, true_front, ideal, nadir = _true_problem(latency)
    scale = nadir - ideal
    ref = np.full(2, 1.1)
    budgets = np.quantile(lat, [0.10, 0.25, 0.50, 0.75])
    objectives = objectives_from_specs(["accuracy:max", f"{latency}:min"])
    results: dict[str, dict[str, object]] = {}
    for name in STRATEGIES.names():
        hv, regret, wall = [], [], []
        for seed in range(SEEDS):
            cfg = make_config(space="nb201", input_shape="3x32x32", objectives=objectives, strategy=name,
                              evaluations=EVALS, seed=seed, benchmark=str(TABLE))
            t0 = time.perf_counter()
            r = run_search(cfg, tmp_path / f"{name}-{seed}", progress=False, log=lambda _m: None)
            wall.append(time.perf_counter() - t0)
            done = [e for e in r.evaluations if e.expensive and e.ok]
            a = np.array([e.metrics["accuracy"] for e in done])
            c = np.array([e.metrics[latency] for e in done])
            F = (np.stack([-a, c], 1) - ideal) / scale
            hv.append(normalized_hypervolume(F, (true_front - ideal) / scale, ref))
            regret.append(float(budget_regret(a, c, acc, lat, budgets).mean()))
        results[name] = {"hv_mean": float(np.mean(hv)), "hv_std": float(np.std(hv)),
                         "regret_mean": float(np.mean(regret)), "regret_std": float(np.std(regret)),
                         "seconds_per_run": float(np.median(wall))}
    base = results["random"]["regret_mean"]
    for r in results.values():
        r["regret_vs_random"] = r["regret_mean"] / base if base else float("nan")
    out = {"command": "make bench  (tests/bench/test_search_bench.py)", "table": str(TABLE), "cost": latency,
           "seeds": SEEDS, "evaluations": EVALS, "budget_quantiles": [0.10, 0.25, 0.50, 0.75],
           "hv_reference": "objectives scaled to [0, 1] by the table's ideal and nadir; reference point (1.1, 1.1)",
           "strategies": results}
    (ROOT / "bench-results").mkdir(exist_ok=True)
    (ROOT / "bench-results" / f"search-{latency}.json").write_text(json.dumps(out, indent=1) + "\n")
    print(f"\n== search on {TABLE.name}, accuracy vs {latency}, {SEEDS} seeds x {EVALS} evaluations ==")
    print(f"{'strategy':<12} {'norm. HV':>14} {'budget regret':>16} {'vs random':>10} {'s/run':>7}")
    for name, r in results.items():
        print(f"{name:<12} {r['hv_mean']:.4f}±{r['hv_std']:.4f} {r['regret_mean']:>8.3f}±{r['regret_std']:.3f} "
              f"{r['regret_vs_random']:>10.2f} {r['seconds_per_run']:>7.2f}")


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
        cls = STRATEGIES.get(name)
        if cls.needs_cheap:
            opts["cheap"] = cheap
        strategy = cls(space, objectives, np.random.default_rng(1), **opts)
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
