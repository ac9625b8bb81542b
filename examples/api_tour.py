"""The three jobs from Python, small enough to run in seconds.

    python examples/api_tour.py [--out runs/api-tour]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from hwnas.device import load_device
from hwnas.objectives import load_objectives, parse_budget
from hwnas.onnx_io import export_onnx
from hwnas.predictor import Predictor
from hwnas.profiler import profile
from hwnas.search import make_config, search
from hwnas.spaces import get_space
from hwnas.timing import Protocol

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="runs/api-tour")
    out = Path(parser.parse_args().out)

    # 1. Profile this CPU for a small NAS-Bench-201 skeleton (one cell per stage, 16x16 inputs).
    device = load_device(ROOT / "devices" / "local-cpu.toml")
    space = get_space("nb201", input_shape="3x16x16", N=1)
    quick = Protocol(warmup_s=0.5, min_runs=30, max_runs=120)  # a short protocol for a tour
    table = profile(device, space, out=out / "nb201-3x16x16.json", protocol=quick, context_models=12, progress=False)
    arch = space.sample(np.random.default_rng(0), 1)[0]
    print(f"predicted {Predictor(table, space).predict([arch]).latency_ms[0]:.4f} ms for {arch.string}")

    # 2. Search under a budget: accuracy and Raspberry Pi 5 latency from the bundled benchmark slice.
    config = make_config(space="nb201", input_shape="3x32x32",
                         objectives=load_objectives(ROOT / "objectives" / "accuracy-latency.toml"),
                         budgets=[parse_budget("latency_ms<=3")], strategy="nsga2", evaluations=40, seed=0,
                         benchmark=str(ROOT / "tests" / "data" / "nb201_canonical.csv.gz"),
                         columns={"latency_ms": "pi5_onnx_latency_ms"})
    result = search(config, out / "search", progress=False)
    for m in result.front:
        print(f"front: accuracy {m['accuracy']:.2f}%  latency {m['latency_ms']:.3f} ms  {m['arch']}")

    # 3. Export the most accurate front member as a checked ONNX model (checker, onnxruntime, parity).
    best = max(result.front, key=lambda m: m["accuracy"])
    deploy = get_space("nb201", input_shape="3x32x32")
    report = export_onnx(deploy.build(deploy.parse(best["arch"])), deploy.example_input(1), out / "best.onnx")
    print(f"wrote {report.path}: opset {report.opset}, max |torch - onnxruntime| {report.max_abs_diff:.1e}")


if __name__ == "__main__":
    main()
