"""``make demo``: the end-to-end path on the embedded default (this CPU).

For each registered space: sample architectures from one seed, describe them (params, MACs,
blocks), export each to a verified ONNX file, and time it in onnxruntime. Later stages
(profile -> search -> export -> re-measure) extend this same script.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from hwnas.facts import describe
from hwnas.onnx_io import export_onnx
from hwnas.spaces import SPACES, get_space

DEMO_INPUTS = {"mobilenet": "1x28x28", "nb201": "3x32x32", "dppnet": "3x32x32"}


def _median_latency_ms(path: Path, x: np.ndarray, runs: int = 20) -> float:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    feed = {sess.get_inputs()[0].name: x}
    for _ in range(3):
        sess.run(None, feed)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        sess.run(None, feed)
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="demo-out", help="folder for the ONNX files (default demo-out)")
    parser.add_argument("--n", type=int, default=2, help="architectures per space (default 2)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    print(f"hwnas demo: seed {args.seed}, {args.n} architectures per space, ONNX files in {out}/\n")
    header = f"{'space':<10} {'input':<8} {'params':>10} {'MACs':>13} {'blocks':>6} {'|torch-ort|':>11} {'ort ms':>7}  id"
    print(header)
    print("-" * len(header))
    for name in SPACES.names():
        space = get_space(name, input_shape=DEMO_INPUTS.get(name, "3x32x32"))
        for arch in space.sample(rng, args.n):
            facts = describe(space, arch)
            path = out / f"{name}-{arch.id}.onnx"
            report = export_onnx(space.build(arch, seed=args.seed), space.example_input(1), path, seed=args.seed)
            ms = _median_latency_ms(path, space.example_input(1).numpy())
            print(f"{name:<10} {DEMO_INPUTS.get(name, '3x32x32'):<8} {facts.params:>10,} {facts.macs:>13,} "
                  f"{len(facts.blocks):>6} {report.max_abs_diff:>11.1e} {ms:>7.2f}  {arch.id}")
            print(f"{'':<10} {arch.string}")
    print(f"\nEvery model passed onnx.checker, ran in onnxruntime and matched torch within 1e-4. Files: {out.resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
