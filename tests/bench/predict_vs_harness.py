"""Does a table predict what an independent onnxruntime harness measures? A script, not a test.

Samples fresh architectures of the table's space (a seed the profile did not use), exports each
as the profiler does (the device's precision included), predicts them with the table, and times
the files with the plain harness of ``measure_vs_harness.py`` (onnxruntime's API alone, one
thread, pinned, interleaved rounds, p10). Prints the share within +-10%, the MAPE, Spearman's rho,
and the worst models with what they are made of, so that a miss can be traced to its blocks.

    .venv/bin/python tests/bench/predict_vs_harness.py TABLE [--samples 30] [--seed 11] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure_vs_harness import harness_p10  # noqa: E402

from hwnas.device.spec import spec_from_record  # noqa: E402
from hwnas.latency.measurement import Job, export_job  # noqa: E402
from hwnas.latency.predictor import Predictor  # noqa: E402
from hwnas.latency.table import open_table  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("table")
    ap.add_argument("--samples", type=int, default=30)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    table, space, _ = open_table(args.table)
    spec = spec_from_record(table.device)
    archs = space.sample(np.random.default_rng(args.seed), args.samples)
    predictor = Predictor(table, space)
    predicted = predictor.predict(archs).latency_ms
    core = (spec.runtime.affinity or (max(os.sched_getaffinity(0)),))[0]
    with tempfile.TemporaryDirectory() as tmp:
        paths = [export_job(Job("model", a.string, arch=a), space, spec, Path(tmp), 0)[0] for a in archs]
        measured = np.array(harness_p10(paths, space.input_shape, core, rounds=args.rounds))
    err = predicted / measured - 1
    from scipy import stats

    print(f"{args.table}: {len(archs)} fresh models (seed {args.seed}), {spec.runtime.precision}, "
          f"harness p10 on core {core}")
    print(f"  within +-10%: {np.mean(np.abs(err) <= 0.10):.1%}   MAPE {np.mean(np.abs(err)):.1%}   "
          f"median error {np.median(err):+.1%}   Spearman {stats.spearmanr(predicted, measured)[0]:.3f}")
    rows = []
    for i in np.argsort(-np.abs(err)):
        a = archs[int(i)]
        blocks = space.blocks(a)
        rows.append({"arch": a.string, "predicted_ms": float(predicted[i]), "measured_ms": float(measured[i]),
                     "error": float(err[i]), "blocks": len(blocks)})
    for r in rows[:5]:
        print(f"  {r['error']:+.1%}  predicted {r['predicted_ms']:.4f} measured {r['measured_ms']:.4f} ms  "
              f"{r['blocks']} blocks  {r['arch']}")
    fit = np.polyfit(np.log(measured), err, 1)
    print(f"  error against log(measured ms): slope {fit[0]:+.3f} per log-ms (0: no trend with size)")
    if args.json:
        Path(args.json).write_text(json.dumps({"table": args.table, "seed": args.seed, "models": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
