"""Profiling benchmarks (issue 3): `make bench` runs them; they are not part of `make test`.

Each prints what it measured and the command that reproduces it, and writes its numbers to
bench-results/profile-<name>.json. Targets are reported, not asserted: shared machines are
noisy, so a timing target in a test would fail for reasons that are not bugs.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest

from hwnas.device.spec import load_device
from hwnas.latency.predictor import Predictor
from hwnas.latency.profiler import ProfileSettings, profile
from hwnas.latency.table import LatencyTable
from hwnas.latency.validate import validate
from hwnas.spaces import get_space

pytestmark = pytest.mark.bench
ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "bench-results"
SHAPES = os.environ.get("HWNAS_BENCH_SHAPES", "3x32x32,3x224x224").split(",")


def _report(name: str, data: dict) -> None:
    OUT.mkdir(exist_ok=True)
    (OUT / f"profile-{name}.json").write_text(json.dumps(data, indent=1) + "\n")
    print(f"\n== {name} ==\n" + json.dumps(data, indent=1))


@pytest.mark.parametrize("shape", SHAPES)
def test_profile_time_repeatability_and_prediction(shape: str, tmp_path: Path) -> None:
    """(a) profiling time, (b) repeatability of two profiles, (c) validation on 50 models."""
    spec = load_device(ROOT / "devices" / "local-cpu.toml")
    space = get_space("mobilenet", input_shape=shape)
    times, tables = [], []
    for run in (1, 2):
        t0 = time.perf_counter()
        tables.append(profile(spec, space, out=tmp_path / f"run{run}.json", progress=False))
        times.append(time.perf_counter() - t0)
    a, b = (t.entries for t in tables)
    diff = np.array([b[k].latency_ms / a[k].latency_ms - 1 for k in a])
    v = validate(tmp_path / "run1.json", samples=50, seed=1, progress=False)
    fit = tables[0].context.fit
    _report(f"mobilenet-{shape}", {
        "command": f"HWNAS_BENCH_SHAPES={shape} make bench  (or: hwnas profile --device devices/local-cpu.toml "
                   f"--space mobilenet --input {shape} && hwnas validate --table <table> --samples 50 --seed 1)",
        "entries": len(a), "statistic": tables[0].statistic,
        "a_profile_seconds": [round(t, 1) for t in times], "a_target_seconds": 600,
        "b_repeatability": {"median_abs_diff": float(np.median(np.abs(diff))), "within_5": float(np.mean(np.abs(diff) <= 0.05)),
                            "max_abs_diff": float(np.max(np.abs(diff))), "targets": "median <= 2%, all within 5%"},
        "c_validation_50_models": {k: v["predictor"][k] for k in ("mape", "within_10", "spearman_rho", "max_abs_err")},
        "c_raw_block_sum": {k: v["raw_block_sum"][k] for k in ("mape", "within_10", "spearman_rho")},
        "c_targets": ">= 95% within 10%, Spearman rho >= 0.95",
        "context_fit_leave_one_out": dict(fit.leave_one_out) if fit else None,
        "unstable_entries": sum(not e.stable for e in a.values()),
        "fingerprint": tables[0].fingerprint,
    })
    assert max(times) <= 600, f"profiling took {max(times):.0f} s (target 600 s)"
    assert np.median(np.abs(diff)) <= 0.02 and np.all(np.abs(diff) <= 0.05), "two profiles disagree beyond the target"
    assert v["predictor"]["within_10"] >= 0.95 and v["predictor"]["spearman_rho"] >= 0.95


def test_predictor_throughput(tmp_path: Path) -> None:
    """(d) predictions per second, vectorised over a population, for each space."""
    spec = load_device(ROOT / "devices" / "local-cpu.toml")
    results = {}
    for name, shape in (("mobilenet", "3x32x32"), ("nb201", "3x32x32"), ("dppnet", "3x32x32")):
        space = get_space(name, input_shape=shape)
        table = profile(spec, space, out=tmp_path / f"{name}.json", progress=False,
                        settings=ProfileSettings(context_models=10, protocol=spec.protocol.__class__(min_runs=10, max_runs=20, warmup_runs=2)))
        predictor = Predictor(LatencyTable.load(table.path), space)
        genes = np.array([a.genes for a in space.sample(np.random.default_rng(0), 100_000)])
        rates = []
        for _ in range(5):
            t0 = time.perf_counter()
            predictor.predict_genes(genes)
            rates.append(len(genes) / (time.perf_counter() - t0))
        results[name] = {"median_archs_per_s": float(np.median(rates)), "population": len(genes)}
    _report("predictor-throughput", {"command": "make bench (tests/bench/test_profile_bench.py::test_predictor_throughput)",
                                     "target_archs_per_s": 100_000, **results})
    slow = {n: round(r["median_archs_per_s"]) for n, r in results.items() if r["median_archs_per_s"] < 100_000}
    assert not slow, f"predictions per second under 100,000: {slow}"
