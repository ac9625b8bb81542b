"""``make demo``: the end-to-end path on the embedded default (this CPU, bundled data, SQLite).

1. For each registered space: sample architectures from one seed, describe them (params, MACs,
   blocks), export each to a verified ONNX file and time it in onnxruntime.
2. Profile ``devices/local-cpu.toml`` for the ``mobilenet`` space at 1x28x28 (a fresh table
   made here is reused), then validate the table on random whole models.
3. Search: NSGA-II under a latency budget on the bundled NAS-Bench-201 slice (accuracy and
   Raspberry Pi 5 latency from the development benchmark), written to a SQLite-archived run.
Later stages (accuracy on real data, export of the front, re-measurement) extend this script.
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

ROOT = Path(__file__).resolve().parents[1]
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
    parser.add_argument("--quick", action="store_true", help="only the sample/describe/export step")
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
    if args.quick:
        return 0
    _profile_and_validate(out, args.seed)
    _search(out, args.seed)
    return 0


def _profile_and_validate(out: Path, seed: int) -> None:
    from hwnas.device import load_device
    from hwnas.predictor import Predictor
    from hwnas.profiler import profile
    from hwnas.table import default_table_path
    from hwnas.validate import validate

    spec = load_device(ROOT / "devices" / "local-cpu.toml")
    space = get_space("mobilenet", input_shape="1x28x28")
    path = ROOT / default_table_path(spec.name, space)
    print(f"\n== 1. profile {spec.name}: mobilenet at 1x28x28 -> {path}")
    table = profile(spec, space, out=path, seed=seed)
    fit = table.context["fit"]
    print(f"   boundary correction, leave-one-out on {fit['n_models']} models: MAPE {fit['leave_one_out']['mape']:.1%} "
          f"(plain sum of blocks: {fit['raw_sum']['mape']:.1%})")
    report = validate(path, samples=20, seed=seed + 1)
    m, raw = report["predictor"], report["raw_block_sum"]
    print(f"   validated on 20 fresh models: MAPE {m['mape']:.1%}, {m['within_10']:.0%} within ±10%, Spearman "
          f"{m['spearman_rho']:.3f} (sum of blocks: MAPE {raw['mape']:.1%}); plot {report['plot_path']}")
    arch = space.sample(np.random.default_rng(seed), 1)[0]
    print(f"   predicted: {Predictor(table, space).predict([arch]).latency_ms[0]:.3f} ms ({table.statistic}) for {arch.string}")


def _search(out: Path, seed: int) -> None:
    from hwnas.objectives import load_objectives, parse_budget
    from hwnas.search import make_config, search

    bench = ROOT / "tests" / "data" / "nb201_canonical.csv.gz"
    run = out / "search-nb201"
    print(f"\n== 2. search: nb201, NSGA-II, 60 evaluations, budget latency_ms<=3 (Raspberry Pi 5 latency "
          f"from the bundled benchmark slice) -> {run}")
    config = make_config(space="nb201", input_shape="3x32x32", objectives=load_objectives(ROOT / "objectives" / "accuracy-latency.toml"),
                         budgets=[parse_budget("latency_ms<=3")], strategy="nsga2", evaluations=60, seed=seed,
                         benchmark=str(bench), columns={"latency_ms": "pi5_onnx_latency_ms"})
    if (run / "archive.sqlite").exists():
        import shutil

        shutil.rmtree(run)
    result = search(config, run)
    for m in result.front:
        print(f"   accuracy {m['accuracy']:.2f}%  latency {m['latency_ms']:.3f} ms  {m['arch']}")
    print(f"   front.json, front.csv, front.png and archive.sqlite in {run}")


if __name__ == "__main__":
    sys.exit(main())
