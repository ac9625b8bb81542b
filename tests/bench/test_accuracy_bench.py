"""Accuracy-estimator benchmarks (issue 6): `make bench`. Printed and written to
bench-results/accuracy-*.json; targets are reported, not asserted.

For N random architectures: the proxy accuracy from `train` (low fidelity) and from `supernet`
(SPOS, inherited weights + BN recalibration), against stand-alone training at full fidelity;
Kendall tau between each proxy and the full-fidelity ranking (target >= 0.5), seconds per `train`
evaluation, supernet training time and seconds per subnet evaluation.

Default: dppnet (one cell per stage) on digits, which this CPU trains in seconds. For the issue's
setting: HWNAS_BENCH_ACC="mobilenet:1x28x28:mnist5k:scale=0.25" HWNAS_BENCH_FULL_EPOCHS=6
(about 40 minutes here: 12 s per epoch per model). Space options follow the third colon,
comma-separated.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import kendalltau

from hwnas.spaces import get_space
from hwnas.supernet import SupernetAccuracy
from hwnas.training import TrainAccuracy

pytestmark = pytest.mark.bench
ROOT = Path(__file__).resolve().parents[2]
SETTING = os.environ.get("HWNAS_BENCH_ACC", "dppnet:1x8x8:digits")
N = int(os.environ.get("HWNAS_BENCH_ACC_N", "20"))
FULL_EPOCHS = int(os.environ.get("HWNAS_BENCH_FULL_EPOCHS", "15"))
SUPERNET_EPOCHS = int(os.environ.get("HWNAS_BENCH_SUPERNET_EPOCHS", "30"))
LOW_EPOCHS, LOW_SUBSET = 3, 1.0  # the train estimator's default fidelity


def test_proxy_rank_agreement() -> None:
    space_name, shape, dataset, *rest = SETTING.split(":")
    opts: dict[str, float] = {"N": 1} if space_name == "dppnet" else {}
    for item in (rest[0].split(",") if rest else []):
        key, _, value = item.partition("=")
        opts[key] = float(value) if "." in value else int(value)
    space = get_space(space_name, input_shape=shape, **opts)
    archs = []
    seen = set()
    rng = np.random.default_rng(2026)
    while len(archs) < N:
        a = space.sample(rng, 1)[0]
        if a.id not in seen:
            seen.add(a.id)
            archs.append(a)
    full = TrainAccuracy(space, dataset=dataset, epochs=FULL_EPOCHS, seed=0)
    low = TrainAccuracy(space, dataset=dataset, epochs=LOW_EPOCHS, subset=LOW_SUBSET, seed=0)
    t0 = time.perf_counter()
    super_est = SupernetAccuracy(space, dataset=dataset, epochs=SUPERNET_EPOCHS, seed=0, log=lambda _m: None)
    super_train_s = time.perf_counter() - t0
    res = {"full": [], "train": [], "supernet": [], "train_s": [], "subnet_s": [], "full_s": []}
    for a in archs:
        t0 = time.perf_counter()
        res["full"].append(full.accuracy(a))
        res["full_s"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        res["train"].append(low.accuracy(a))
        res["train_s"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        res["supernet"].append(super_est.accuracy(a))
        res["subnet_s"].append(time.perf_counter() - t0)
    tau_train = kendalltau(res["train"], res["full"]).statistic
    tau_super = kendalltau(res["supernet"], res["full"]).statistic
    out = {
        "command": f"HWNAS_BENCH_ACC={SETTING} make bench (tests/bench/test_accuracy_bench.py)",
        "space": space_name, "input": shape, "dataset": dataset, "architectures": N,
        "space_options": opts, "full_fidelity": f"stand-alone, {FULL_EPOCHS} epochs, full training split", "train_proxy": f"{LOW_EPOCHS} epochs, {LOW_SUBSET:.0%} of the training split",
        "supernet_proxy": f"SPOS, {SUPERNET_EPOCHS} epochs, 4 BN-calibration batches",
        "kendall_tau": {"train": float(tau_train), "supernet": float(tau_super), "target": 0.5},
        "seconds": {"train_eval_median": float(np.median(res["train_s"])), "full_eval_median": float(np.median(res["full_s"])),
                    "supernet_training": super_train_s, "subnet_eval_median": float(np.median(res["subnet_s"]))},
        "accuracy_mean": {k: float(np.mean(res[k])) for k in ("full", "train", "supernet")},
        "per_architecture": [{"arch": a.string, **{k: res[k][i] for k in ("full", "train", "supernet")}} for i, a in enumerate(archs)],
    }
    (ROOT / "bench-results").mkdir(exist_ok=True)
    (ROOT / "bench-results" / f"accuracy-{space_name}-{dataset}.json").write_text(json.dumps(out, indent=1) + "\n")
    print(f"\n== proxy rank agreement, {space_name} {shape} on {dataset}, {N} architectures ==")
    print(json.dumps({k: out[k] for k in ("kendall_tau", "seconds", "accuracy_mean")}, indent=1))
