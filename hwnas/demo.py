"""``make demo``: the main job end to end on the embedded default (this CPU, bundled MNIST, SQLite).

How it works, and why: ``docs/design.md`` (hwnas.demo).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from hwnas.core.log import configure
from hwnas.core.files import output_folder
from hwnas.spaces import SPACES, get_space
from hwnas.spaces.facts import describe
from hwnas.models.onnx_io import ParityCheck, export_onnx

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
    parser.add_argument("--evaluations", type=int, default=64, help="search evaluations (default 64)")
    parser.add_argument("--retrain-epochs", type=int, default=5, help="retraining epochs per exported model (default 5)")
    args = parser.parse_args(argv)
    configure()  # the library logs; the demo shows the log, as the hwnas command does
    out = output_folder(args.out, "demo folder")
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
            report = export_onnx(space.build(arch, seed=args.seed), space.example_input(1), path,
                                 parity=ParityCheck(seed=args.seed))
            ms = _median_latency_ms(path, space.example_input(1).numpy())
            print(f"{name:<10} {DEMO_INPUTS.get(name, '3x32x32'):<8} {facts.params:>10,} {facts.macs:>13,} "
                  f"{len(facts.blocks):>6} {report.max_abs_diff:>11.1e} {ms:>7.2f}  {arch.id}")
            print(f"{'':<10} {arch.string}")
    print(f"\nEvery model passed onnx.checker, ran in onnxruntime and matched torch within 1e-4. Files: {out.resolve()}")
    if args.quick:
        return 0
    started = time.perf_counter()
    table_path = _profile_and_validate(args.seed)
    run = _search(out, table_path, args.seed, args.evaluations)
    index = _export(run, out / "models", args.seed, args.retrain_epochs)
    from hwnas.deploy.report import write_report

    report = write_report(run)
    print(f"\n== 4. report: {report}")
    print(f"\nDone in {time.perf_counter() - started:.0f} s.")
    print(f"  latency table : {table_path}")
    print(f"  search run    : {run}/ (front.json, front.png, history.csv, archive.sqlite)")
    print(f"  ONNX models   : {index['out']}/*.onnx")
    print(f"  model cards   : {index['out']}/*.md and *.json, index.json")
    print(f"  report        : {report}")
    return 0


SPACE_OPTIONS = {"scale": 0.25}


def _profile_and_validate(seed: int) -> Path:
    from hwnas.device.spec import load_device
    from hwnas.latency.profiler import ProfileSettings, profile
    from hwnas.latency.table import default_table_path
    from hwnas.latency.validate import validate

    spec = load_device("local-cpu")  # the preset: ./devices, the source tree, or the installed wheel
    space = get_space("mobilenet", input_shape="1x28x28", **SPACE_OPTIONS)
    path = default_table_path(spec.name, space, precision=spec.runtime.precision)  # under the working folder
    print(f"\n== 1. profile {spec.name}: mobilenet (scale 0.25) at 1x28x28 -> {path}")
    table = profile(spec, space, out=path, settings=ProfileSettings(seed=seed))
    fit = table.context.fit
    assert fit is not None  # a finished profile has its fit
    print(f"   boundary correction, leave-one-out on {fit.n_models} models: MAPE {fit.leave_one_out['mape']:.1%} "
          f"(plain sum of blocks: {fit.raw_sum['mape']:.1%})")
    report = validate(path, samples=20, seed=seed + 1)
    m, raw = report["predictor"], report["raw_block_sum"]
    print(f"   validated on 20 fresh models: MAPE {m['mape']:.1%}, {m['within_10']:.0%} within ±10%, Spearman "
          f"{m['spearman_rho']:.3f} (sum of blocks: MAPE {raw['mape']:.1%}); plot {report['plot_path']}")
    return path


def _budget_ms(table_path: Path, seed: int) -> float:
    """A budget that binds: the 30th percentile of predicted latency over random architectures."""
    from hwnas.latency.predictor import Predictor
    from hwnas.latency.table import open_table

    table, space, _ = open_table(table_path)
    lat = Predictor(table, space).predict(space.sample(np.random.default_rng(seed + 7), 500)).latency_ms
    return float(np.round(np.percentile(lat, 30), 3))


def _search(out: Path, table_path: Path, seed: int, evaluations: int) -> Path:
    import shutil

    from hwnas.optimize.objectives import load_objectives, parse_budget
    from hwnas.optimize import make_config, run_search

    budget = _budget_ms(table_path, seed)
    run = out / "search-mobilenet-mnist5k"
    from hwnas.evaluation.supernet import SHARING_VERSION

    # outside the run folder: reused by later demos, until a new sharing scheme needs a new one
    supernet = out / f"supernet-mobilenet-mnist5k-v{SHARING_VERSION}.pt"
    print(f"\n== 2. search: mobilenet on mnist5k, model-based (bo), {evaluations} evaluations, budget latency_ms<={budget} "
          f"(30th percentile of random models), accuracy from a supernet -> {run}")
    config = make_config(space="mobilenet", input_shape="1x28x28", space_options=SPACE_OPTIONS,
                         objectives=load_objectives("accuracy-latency"),
                         budgets=[parse_budget(f"latency_ms<={budget}")], strategy="bo",
                         evaluations=evaluations, seed=seed, table=str(table_path),
                         accuracy="supernet", accuracy_options={"dataset": "mnist5k", "path": str(supernet.resolve())})
    if run.exists():
        shutil.rmtree(run)
    result = run_search(config, run)
    from hwnas.deploy.export import proxy_label

    for m in result.front:  # a proxy's score, not a top-1 accuracy: step 3 retrains for that
        print(f"   proxy {m['accuracy']:.2f}% ({proxy_label(config)})  latency {m['latency_ms']:.3f} ms  {m['arch']}")
    return run


def _export(run: Path, models: Path, seed: int, epochs: int) -> dict:
    from hwnas.deploy.export import ExportSettings, export_front

    print(f"\n== 3. export: 4 front members, retrained from scratch ({epochs} epochs), verified, re-measured -> {models}")
    index = export_front(run, models, ExportSettings(retrain=True, epochs=epochs, limit=4, seed=seed),
                         argv=["python", "-m", "hwnas.demo"])
    for m in index["models"]:
        fixed = m["latency_error_drift_corrected_pct"]
        drift = "" if fixed is None else f"; drift-corrected {fixed:+.1f}%"
        print(f"   {m['name']}: test {m['test_accuracy']:.2f}%  measured {m['measured_ms']:.3f} ms "
              f"(predicted {m['predicted_ms']:.3f}, {m['latency_error_pct']:+.1f}%{drift})  "
              f"{'in budget' if m['budget_ok'] else 'BREAKS BUDGET'}")
    return index




if __name__ == "__main__":
    sys.exit(main())
