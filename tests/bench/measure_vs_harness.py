"""Does ``hwnas measure`` agree with a plain onnxruntime harness? A script, not a test.

Exports MobileNetV2 at widths 0.25, 0.35, 0.5 and 0.75 adapted to the input, times them with
``hwnas.measure_models`` on a device (its protocol and statistic), then with an independent
harness written here from onnxruntime's API alone: one intra-op thread, the process pinned to
the device's core, 50 warm-up runs, then interleaved rounds of 50 runs per model, the 10th
percentile. Prints both per model, their difference and whether the two rank the models alike.
Then times MobileNetV2 0.35 as a search's ``--reference`` (beside the table's sentinels, in the
table's terms) ``--repeats`` times, and prints the spread of the budget it would make.

    .venv/bin/python tests/bench/measure_vs_harness.py [--device local-cpu] [--input 1x28x28]
        [--table latency_tables/local-cpu/mobilenet-scale0.25-1x28x28.json] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from hwnas.device.spec import load_device
from hwnas.latency.onnx_models import measure_models, measure_reference
from hwnas.models.onnx_io import export_onnx
from hwnas.models.reference import mobilenet_v2
from hwnas.spaces import parse_shape

WIDTHS = (0.25, 0.35, 0.5, 0.75)


def harness_p10(paths: list[Path], shape: tuple[int, ...], core: int, rounds: int = 20, runs: int = 50) -> list[float]:
    """The 10th percentile (ms) of each file, timed interleaved on one pinned core."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {core})
    try:
        sessions = []
        for p in paths:
            so = ort.SessionOptions()
            so.intra_op_num_threads, so.inter_op_num_threads = 1, 1
            so.add_session_config_entry("session.intra_op.allow_spinning", "0")
            sessions.append(ort.InferenceSession(str(p), so, providers=["CPUExecutionProvider"]))
        x = np.random.default_rng(0).standard_normal((1, *shape)).astype(np.float32)
        feeds = [{s.get_inputs()[0].name: x} for s in sessions]
        for s, f in zip(sessions, feeds):
            for _ in range(50):
                s.run(None, f)
        times: list[list[float]] = [[] for _ in sessions]
        for _ in range(rounds):
            for k, (s, f) in enumerate(zip(sessions, feeds)):
                for _ in range(runs):
                    t = time.perf_counter_ns()
                    s.run(None, f)
                    times[k].append((time.perf_counter_ns() - t) / 1e6)
        return [float(np.percentile(t, 10)) for t in times]
    finally:
        os.sched_setaffinity(0, before)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="local-cpu")
    ap.add_argument("--input", default="1x28x28")
    ap.add_argument("--table", default=None)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    spec = load_device(args.device)
    shape = parse_shape(args.input)
    core = (spec.runtime.affinity or (max(os.sched_getaffinity(0)),))[0]
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for w in WIDTHS:
            path = Path(tmp) / f"mobilenetv2-{w:g}.onnx"
            export_onnx(mobilenet_v2(w, args.input).build(0), torch.zeros((1, *shape)), path, dynamic_batch=False)
            paths.append(path)
        ours = [r.latency_ms for r in measure_models(spec, paths)]
        theirs = harness_p10(paths, shape, core)
        print(f"hwnas measure ({spec.name}, {spec.protocol.statistic}) against an onnxruntime harness (p10, 1 thread, "
              f"core {core}), {args.input}:")
        for w, a, b in zip(WIDTHS, ours, theirs):
            print(f"  MobileNetV2 {w:g}: {a:.4f} ms vs {b:.4f} ms ({100 * (a - b) / b:+.1f}%)")
        same = list(np.argsort(ours)) == list(np.argsort(theirs))
        print(f"  largest difference {max(abs(a - b) / b for a, b in zip(ours, theirs)):.1%}; same ranking: {same}")
        if args.table:
            from hwnas.latency.table import open_table

            table, space, _ = open_table(args.table)
            ref = paths[WIDTHS.index(0.35)]
            budgets = [measure_reference(ref, table, space, seed=k).latency_ms for k in range(args.repeats)]
            spread = (max(budgets) - min(budgets)) / float(np.median(budgets))
            print(f"  --reference MobileNetV2 0.35, {args.repeats} runs: budget latency_ms <= "
                  f"{', '.join(f'{b:.4f}' for b in budgets)}; max-min {spread:.1%} of the median")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
