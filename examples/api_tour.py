"""The three jobs from Python in one short file: profile, search under a budget, export + report.

    python examples/api_tour.py [--out runs/api-tour]

A tiny NAS-Bench-201 skeleton (one cell per stage) at 1x8x8 on scikit-learn's digits, so that
it runs in well under a minute; swap in your space, input, dataset and device for real work.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from hwnas.deploy.export import ExportSettings, export_front
from hwnas.deploy.report import write_report
from hwnas.device.spec import load_device
from hwnas.latency.predictor import Predictor
from hwnas.latency.profiler import ProfileSettings, profile
from hwnas.measure.timing import Protocol
from hwnas.optimize.minimize import minimize
from hwnas.optimize.problem import Problem, Sources
from hwnas.spaces import get_space

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="runs/api-tour")
    out = Path(parser.parse_args().out)

    # 1. Profile this CPU: every block of the space, plus whole models for the boundary correction.
    device = load_device(ROOT / "devices" / "local-cpu.toml")
    space = get_space("nb201", input_shape="1x8x8", N=1)
    quick = Protocol(warmup_s=0.5, min_runs=30, max_runs=120)  # a short protocol for a tour
    table = profile(device, space, out=out / "nb201-1x8x8.json", progress=False,
                    settings=ProfileSettings(protocol=quick, context_models=12))
    latency = Predictor(table, space).predict(space.sample(np.random.default_rng(0), 200)).latency_ms
    budget = float(np.percentile(latency, 50))  # a budget that binds: half of random models break it
    print(f"table: {len(table.entries)} blocks; budget latency_ms<={budget:.4f}")

    # 2. Search: NSGA-II, accuracy from real (short) training on digits, latency from the table.
    sources = Sources(table=table.path, accuracy="train", accuracy_options={"dataset": "digits", "epochs": 2, "threads": 1})
    problem = Problem.build("nb201", ["accuracy:max", "latency_ms:min"], input_shape="1x8x8", space_options={"N": 1},
                            budgets=[f"latency_ms<={budget:.4f}"], sources=sources)
    result = minimize(problem, "nsga2", strategy_options={"pop_size": 6}, evaluations=12, seed=0,
                      run_dir=out / "search")
    for m in result.front:
        print(f"front: accuracy {m['accuracy']:.2f}% (proxy)  latency {m['latency_ms']:.4f} ms  {m['arch']}")

    # 3. Export the front: retrain, verified ONNX, re-measured on the device, model cards; report.
    index = export_front(out / "search", out / "models", ExportSettings(retrain=True, epochs=4, limit=3, threads=1),
                         progress=False)
    for m in index["models"]:
        print(f"exported {m['onnx']}: test {m['test_accuracy']:.2f}%  measured {m['measured_ms']:.4f} ms  "
              f"{'in budget' if m['budget_ok'] else 'BREAKS BUDGET'}")
    print(f"report: {write_report(out / 'search')}")


if __name__ == "__main__":
    main()
