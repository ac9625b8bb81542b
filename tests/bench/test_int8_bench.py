"""INT8 benchmark (`make bench`; not in `make test`): how well int8 tables predict, how different
int8 rankings are from fp32 ones, and what quantization costs in accuracy on mnist5k.

1. Profile ``mobilenet`` at 1x28x28 (``scale=0.25``) and at 3x32x32 on ``devices/local-cpu.toml``
   in fp32 and int8; validate each int8 table on 30 fresh models (within +-10%, Spearman).
2. Rankings: Spearman between the fp32 and int8 predicted latencies of 200 random architectures
   (1x28x28); and over all 6,466 NAS-Bench-201 classes (accuracy from the bundled NinaPro table,
   latency from this CPU's fp32 and int8 nb201 tables at 3x32x32), whether the two fronts share
   members.
3. mnist5k: a short int8 search (train, quantized=1) on the int8 table, then ``hwnas export
   --retrain``: fp32 and int8 test accuracy through onnxruntime, speed-up per model.

Reported, not asserted (shared machines are noisy). Writes bench-results/int8.json.

    .venv/bin/python -m pytest -q -m bench -s tests/bench/test_int8_bench.py
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import spearmanr

from hwnas.cli import main
from hwnas.core.pareto import non_dominated
from hwnas.device.spec import load_device, with_runtime
from hwnas.latency.predictor import Predictor
from hwnas.latency.profiler import profile
from hwnas.latency.table import LatencyTable
from hwnas.latency.validate import validate
from hwnas.spaces import get_space

pytestmark = pytest.mark.bench
ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "bench-results"
BENCH = ROOT / "tests" / "data" / "nb201_canonical.csv.gz"


def _tables(tmp: Path, space, name: str) -> dict[str, object]:
    spec = load_device(ROOT / "devices" / "local-cpu.toml")
    out = {}
    for precision in ("fp32", "int8"):
        s = with_runtime(spec, precision=precision)
        t0 = time.perf_counter()
        out[precision] = profile(s, space, out=tmp / f"{name}-{precision}.json", progress=False, log=lambda _m: None)
        print(f"profiled {name} {precision}: {len(out[precision].entries)} entries, {time.perf_counter() - t0:.0f} s")
    return out


def test_int8_prediction_rankings_and_accuracy(tmp_path: Path) -> None:  # long: one benchmark, three parts
    results: dict[str, object] = {"date": time.strftime("%Y-%m-%d")}
    small = get_space("mobilenet", input_shape="1x28x28", scale=0.25)
    for label, space in (("mobilenet-1x28x28-scale0.25", small), ("mobilenet-3x32x32", get_space("mobilenet", input_shape="3x32x32"))):
        tables = _tables(tmp_path, space, label)
        rep = validate(tables["int8"].path, samples=30, seed=1, progress=False, log=lambda _m: None)
        m, d = rep["predictor"], rep["drift_corrected"]
        results[label] = {"within_10": m["within_10"], "spearman": m["spearman_rho"], "mape": m["mape"],
                          "within_10_drift_corrected": d["within_10"], "drift": rep["drift"]["factor"]}
        print(f"int8 {label}: {m['within_10']:.0%} within +-10% ({d['within_10']:.0%} drift-corrected), "
              f"MAPE {m['mape']:.1%}, Spearman {m['spearman_rho']:.3f}")
        if space is small:
            archs = space.sample(np.random.default_rng(7), 200)
            fp = Predictor(tables["fp32"], space).predict(archs).latency_ms
            q = Predictor(tables["int8"], space).predict(archs).latency_ms
            rho = float(spearmanr(fp, q)[0])
            results["ranking_spearman_fp32_int8_200"] = rho
            results["int8_over_fp32_median"] = float(np.median(q / fp))
            print(f"fp32 vs int8 predicted latency over 200 architectures: Spearman {rho:.3f}, "
                  f"int8/fp32 median {np.median(q / fp):.2f}")

    # fronts over NAS-Bench-201: benchmark accuracy, this CPU's latency in each precision
    nb = get_space("nb201", input_shape="3x32x32")
    tables = _tables(tmp_path, nb, "nb201-3x32x32")
    import pandas as pd

    rows = pd.read_csv(BENCH)
    archs = [nb.parse(a) for a in rows["arch"]]
    acc = rows["accuracy"].to_numpy()
    fronts = {}
    for precision, table in tables.items():
        lat = Predictor(table, nb).predict(archs).latency_ms
        fronts[precision] = {archs[i].id for i in non_dominated(np.c_[-acc, lat])}
    shared = fronts["fp32"] & fronts["int8"]
    results["nb201_fronts"] = {"fp32": len(fronts["fp32"]), "int8": len(fronts["int8"]), "shared": len(shared)}
    print(f"nb201 fronts: fp32 {len(fronts['fp32'])}, int8 {len(fronts['int8'])} members, {len(shared)} shared")

    # mnist5k: int8 search, retrained export, accuracy of both files through onnxruntime
    run, out = tmp_path / "run", tmp_path / "export"
    table = LatencyTable.load(tmp_path / "mobilenet-1x28x28-scale0.25-int8.json")  # profiled above
    assert main(["search", "--space", "mobilenet", "--input", "1x28x28", "--space-opt", "scale=0.25",
                 "--objective", "accuracy:max", "--objective", "latency_ms:min", "--table", str(table.path),
                 "--accuracy", "train", "--accuracy-opt", "dataset=mnist5k", "--accuracy-opt", "quantized=1", "--accuracy-opt", "epochs=2",
                 "--evaluations", "8", "--strategy", "random", "--run-dir", str(run), "--no-progress"]) == 0
    assert main(["export", str(run), "--out", str(out), "--retrain", "--epochs", "5", "--limit", "3",
                 "--no-progress"]) == 0
    index = json.loads((out / "index.json").read_text())
    models = [{k: m.get(k) for k in ("name", "measured_ms", "int8_measured_ms", "int8_speedup", "fp32_onnx_test_accuracy",
                                     "int8_test_accuracy", "int8_agreement_pct")} for m in index["models"]]
    results["mnist5k_export"] = models
    for m in models:
        gap = m["fp32_onnx_test_accuracy"] - m["int8_test_accuracy"]
        print(f"{m['name']}: test {m['fp32_onnx_test_accuracy']:.2f}% fp32 -> {m['int8_test_accuracy']:.2f}% int8 "
              f"({gap:+.2f} points), agreement {m['int8_agreement_pct']:.1f}%, int8 speed-up {m['int8_speedup']:.2f}x")
    OUT.mkdir(exist_ok=True)
    (OUT / "int8.json").write_text(json.dumps(results, indent=1) + "\n")
