"""The ``hwnas`` command line.

Every subcommand has ``--help``. Bad input exits with code 2 and one line on stderr that names
what is wrong (``hwnas: error: ...``), as argparse does for usage errors.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from hwnas.core.errors import HwnasError, InvalidInputShapeError
from hwnas.core.versions import __version__
from hwnas.spaces import SPACES, SearchSpace, get_space

Handler = Callable[[argparse.Namespace], int]


def _space_option(text: str) -> tuple[str, int | float]:
    key, sep, value = text.partition("=")
    try:
        number: int | float = int(value) if value.lstrip("-").isdigit() else float(value)
    except ValueError:
        number = math.nan
    if not sep or not key or not math.isfinite(number):
        raise argparse.ArgumentTypeError(f"space option {text!r} is not KEY=NUMBER, e.g. C=16 or scale=0.25")
    return key, number


def _add_space_args(p: argparse.ArgumentParser, *, input_required: bool = True) -> None:
    p.add_argument("--space", required=True, help=f"search space ({', '.join(SPACES.names())})")
    p.add_argument("--input", required=input_required, default="3x32x32", metavar="CxHxW",
                   help="input shape without batch, e.g. 1x28x28, 3x32x32, 3x224x224")
    p.add_argument("--classes", type=int, default=10, help="number of output classes (default 10)")
    p.add_argument("--space-opt", type=_space_option, action="append", default=[], metavar="KEY=VALUE",
                   help="a macro setting of the space, e.g. C=16 or N=5 for nb201, scale=0.25 for mobilenet (repeatable)")


def _space(args: argparse.Namespace) -> SearchSpace:
    return get_space(args.space, input_shape=args.input, num_classes=args.classes, **dict(args.space_opt))


def cmd_spaces(args: argparse.Namespace) -> int:
    rows = []
    for name in SPACES.names():
        cls = SPACES.get(name)
        distinct = cls.n_distinct() if hasattr(cls, "n_distinct") else cls.size()
        rows.append({"name": name, "version": cls.version, "size": cls.size(), "distinct": distinct,
                     "genes": len(cls.cardinalities()), "description": cls.description})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    def count(n: int) -> str:
        return f"{n:,}" if n < 10**12 else f"{n:.3e}"

    print(f"{'space':<10} {'version':>7} {'architectures':>14} {'distinct':>14} {'genes':>5}  description")
    for r in rows:
        print(f"{r['name']:<10} {r['version']:>7} {count(r['size']):>14} {count(r['distinct']):>14} {r['genes']:>5}  {r['description']}")
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    if args.n < 1:
        raise InvalidInputShapeError(f"--n must be >= 1, got {args.n}")
    space = _space(args)  # validates the input shape even though genotypes do not depend on it
    for arch in space.sample(np.random.default_rng(args.seed), args.n):
        print(arch.string)
    return 0


def cmd_describe(args: argparse.Namespace) -> int:
    from hwnas.spaces.facts import describe

    space = _space(args)
    arch = space.parse(args.arch)
    facts = describe(space, arch)
    if args.json:
        print(json.dumps({**facts.to_dict(), "space_version": space.version, "space_config": space.config()}, indent=2))
        return 0
    print(f"space      {space.name} (version {space.version})")
    print(f"arch       {arch.string}")
    print(f"id         {arch.id}")
    if arch.canonical != arch.string:
        print(f"canonical  {arch.canonical}")
    print(f"input      {args.input}")
    print(f"params     {facts.params:,}")
    print(f"FLOPs      {facts.macs:,} multiply-accumulates (fvcore)")
    print(f"blocks     {len(facts.blocks)}")
    width = max(len(b.key) for b in facts.blocks)
    print(f"  {'#':>3}  {'key':<{width}}  {'params':>10}  {'MACs':>12}")
    for i, b in enumerate(facts.blocks):
        print(f"  {i:>3}  {b.key:<{width}}  {b.params:>10,}  {b.macs:>12,}")
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    from hwnas.spaces.onnx_io import check_writable, export_onnx

    space = _space(args)
    arch = space.parse(args.arch)
    check_writable(args.output)  # fail before spending time on the build
    model = space.build(arch, seed=args.seed)
    report = export_onnx(model, space.example_input(1, seed=args.seed), args.output, opset=args.opset,
                         dynamic_batch=not args.static_batch, exporter=args.exporter, seed=args.seed)
    print(f"wrote {report.path}: {space.name} {arch.string} (id {arch.id})")
    print(f"  opset {report.opset}, {report.exporter} exporter, onnx.checker passed, "
          f"onnxruntime ran it ({', '.join(report.providers)})")
    print(f"  max |torch - onnxruntime| = {report.max_abs_diff:.2e} over {report.n_parity_inputs} random inputs")
    return 0


def cmd_profile(args: argparse.Namespace) -> int:
    from hwnas.device.spec import load_device
    from hwnas.latency.profiler import profile

    spec = load_device(args.device)
    space = _space(args)
    table = profile(spec, space, out=args.out, context_models=args.context_models, seed=args.seed,
                    energy_model=args.energy_model, force=args.force, progress=not args.no_progress)
    fit = table.context.get("fit") or {}
    if fit:
        loo, raw = fit["leave_one_out"], fit["raw_sum"]
        print(f"whole-model check on {fit['n_models']} context models (leave-one-out): MAPE {loo['mape']:.1%}, "
              f"{loo['within_10']:.0%} within ±10%  (sum of isolated blocks: MAPE {raw['mape']:.1%}, "
              f"{raw['within_10']:.0%} within ±10%)")
    print(f"table: {table.path}  (statistic: {table.statistic})")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from hwnas.latency.predictor import Predictor
    from hwnas.latency.table import open_table

    table, space, accepted = open_table(args.table, allow_mismatch=args.allow_mismatch)
    arch = space.parse(args.arch)
    predictor = Predictor(table, space)
    pred = predictor.predict([arch])
    latency = float(pred.latency_ms[0])
    energy = None if pred.energy_mj is None else float(pred.energy_mj[0])
    if args.json:
        out = {"latency_ms": latency, "statistic": table.statistic, "energy_mj": energy,
               "energy_source": pred.energy_source, "energy_estimated": pred.energy_estimated,
               "arch": arch.string, "arch_id": arch.id, "table": str(table.path), "device": table.fingerprint.get("device"),
               "calibrated": table.calibration is not None, "accepted_mismatches": accepted,
               "blocks": predictor.breakdown(arch)}
        print(json.dumps(out, indent=2))
        return 0
    line = f"{latency:.4f} ms ({table.statistic})"
    if energy is not None:
        line += f"  {energy:.4f} mJ ({'estimated' if pred.energy_estimated else pred.energy_source})"
    else:
        line += "  energy unavailable"
    print(line)
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from hwnas.device.spec import load_device
    from hwnas.latency.validate import validate

    spec = load_device(args.device) if args.device else None
    r = validate(args.table, samples=args.samples, seed=args.seed, calibrate=args.calibrate, spec=spec,
                 allow_mismatch=args.allow_mismatch, progress=not args.no_progress)
    for name, key in (("hwnas predictor", "predictor"), ("sum of isolated blocks", "raw_block_sum")):
        m = r[key]
        print(f"{name:<24} MAPE {m['mape']:6.1%}   within ±10% {m['within_10']:6.1%}   Spearman rho {m['spearman_rho']:.3f}")
    if "calibration" in r:
        c = r["calibration"]
        print(f"calibration stored in the table: scale {c['scale']:.4f}, offset {c['offset_ms']:+.4f} ms; in-sample "
              f"MAPE {c['in_sample']['mape']:.1%}, within ±10% {c['in_sample']['within_10']:.0%} "
              "(validate again with another --seed for a held-out check)")
    print(f"{r['samples']} models, statistic {r['statistic']}, seed {r['seed']}; report {r['report_path']}"
          + (f", plot {r['plot_path']}" if r.get("plot_path") else ""))
    return 0


def _key_value(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    for cast in (int, float):
        try:
            return key, cast(value)
        except ValueError:
            pass
    return key, value


def cmd_search(args: argparse.Namespace) -> int:
    from hwnas.search.objectives import load_objectives, objectives_from_specs, parse_budget
    from hwnas.search import SearchError, make_config, search

    if args.resume:
        result = search({}, args.resume, resume=True, progress=not args.no_progress, executor=args.executor)
    else:
        missing = [f for f in ("space", "run_dir") if not getattr(args, f)]
        if missing:
            raise SearchError(f"--{missing[0].replace('_', '-')} is required (or --resume RUN_DIR)")
        if bool(args.objectives) == bool(args.objective):
            raise SearchError("give either --objectives PRESET.toml or --objective NAME:min|max (repeatable)")
        objectives = load_objectives(args.objectives) if args.objectives else objectives_from_specs(args.objective)
        config = make_config(
            space=args.space, input_shape=args.input, num_classes=args.classes, space_options=dict(args.space_opt),
            objectives=objectives, budgets=[parse_budget(b) for b in args.budget], strategy=args.strategy,
            strategy_options=dict(args.strategy_opt), evaluations=args.evaluations, seed=args.seed,
            table=args.table, benchmark=args.benchmark, columns=dict(args.metric), accuracy=args.accuracy,
            accuracy_options=dict(args.accuracy_opt), time_limit_s=args.time_limit, allow_mismatch=args.allow_mismatch,
        )
        result = search(config, args.run_dir, progress=not args.no_progress, executor=args.executor)
    names = result.config.objectives.names
    state = "feasible" if result.feasible else "LEAST-VIOLATING (no candidate met the budget)"
    print(f"{result.config.strategy}: {result.used} evaluations, front of {len(result.front)} ({state})")
    for m in result.front:
        print("  " + "  ".join(f"{n}={m[n]:.4g}" for n in names) + f"  {m['arch']}")
    print(f"run: {result.run_dir}/  (front.json, front.csv, front.png, history.csv, archive.sqlite)")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from hwnas.bench.run import BenchError, print_summary, run_bench
    from hwnas.search.objectives import parse_budget

    if not args.objective:
        raise BenchError("give the objectives: --objective accuracy:max --objective <cost column>:min")
    summary = run_bench(
        space=args.space, input_shape=args.input, table=args.table, objectives=args.objective,
        strategies=[s.strip() for s in args.strategies.split(",") if s.strip()], evaluations=args.evaluations,
        seeds=args.seeds, out=args.out, budgets=[parse_budget(b) for b in args.budget],
        cheap=args.cheap.split(",") if args.cheap is not None else None, workers=args.workers,
        command=["hwnas", *args.argv], peers=[s.strip() for s in (args.peers or "").split(",") if s.strip()],
        reference_evaluations=args.reference_evaluations,
    )
    print_summary(summary)
    print(f"seeds {summary['seeds'][0]}..{summary['seeds'][-1]}, {summary['wall_s']:.1f} s on {summary['workers']} "
          f"worker(s); traces, summary.json, hv.png and front.png in {args.out}/")
    return 0


def cmd_bench_import(args: argparse.Namespace) -> int:
    from hwnas.bench.run import import_nb201

    n = import_nb201(args.input, args.output, index_column=args.index_column)
    print(f"wrote {args.output}: {n} rows, 'arch' in NAS-Bench-201 cell strings (benchmark index order)")
    return 0


def cmd_retrain(args: argparse.Namespace) -> int:
    from hwnas.deploy.retrain import retrain

    report = retrain(args.run_dir, epochs=args.epochs, dataset=args.dataset, seed=args.seed, limit=args.limit)
    ok = [m for m in report["models"] if m["status"] == "complete"]
    print(f"{len(ok)} of {len(report['models'])} front members retrained on {report['dataset']} "
          f"({report['settings']['epochs']} epochs); report {args.run_dir}/retrain.json")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from hwnas.deploy.export import export_front

    index = export_front(args.run_dir, args.out, device=args.device, retrain=args.retrain, epochs=args.epochs,
                         limit=args.limit, seed=args.seed, budgets=args.budget, threads=args.threads,
                         argv=["hwnas", *args.argv],
                         progress=not args.no_progress)
    over = index["over_budget"]
    print(f"exported {index['exported']} of {index['front_size']} front members to {args.out}/ "
          f"(ONNX + cards, index.json), measured on {index['device']}"
          + (f"; {len(over)} BREAK THE BUDGET: {', '.join(over)}" if over else "; all within budget"))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from hwnas.deploy.report import write_report

    path = write_report(args.run_dir, out=args.out, export_dir=args.export)
    print(f"report: {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hwnas",
        description="Hardware-aware multi-objective NAS: profile a device, search under its budget, "
        "export the Pareto front as verified ONNX models.",
    )
    parser.add_argument("--version", action="version", version=f"hwnas {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("spaces", help="list the search spaces and their sizes")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_spaces)

    p = sub.add_parser("sample", help="print random architectures, one per line")
    _add_space_args(p, input_required=False)
    p.add_argument("--n", type=int, default=1, help="how many (default 1)")
    p.add_argument("--seed", type=int, default=0, help="seed of the run's numpy Generator (default 0)")
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("describe", help="parameters, FLOPs and block list of an architecture")
    _add_space_args(p)
    p.add_argument("--arch", required=True, help="architecture string (quote it)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_describe)

    p = sub.add_parser("build", help="export an architecture to a verified ONNX file")
    _add_space_args(p)
    p.add_argument("--arch", required=True, help="architecture string (quote it)")
    p.add_argument("--output", required=True, help="path of the .onnx file to write")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset, >= 17 (default 17)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights (default 0)")
    p.add_argument("--exporter", choices=("torchscript", "dynamo"), default="torchscript",
                   help="torch exporter (default torchscript: ~300x faster here, see hwnas/spaces/onnx_io.py)")
    p.add_argument("--static-batch", action="store_true", help="fix the batch dimension at 1")
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("profile", help="time every block of a space on a device into a latency table")
    p.add_argument("--device", required=True, help="device spec, e.g. devices/local-cpu.toml")
    _add_space_args(p)
    p.add_argument("--out", help="table path (default latency_tables/<device>/<space>[-<option><value>]-<CxHxW>.json)")
    p.add_argument("--context-models", type=int, default=40,
                   help="whole models timed alongside the blocks to fit the boundary correction (default 40)")
    p.add_argument("--seed", type=int, default=0, help="seed of the context models and weights (default 0)")
    p.add_argument("--energy-model", action="store_true",
                   help="with meter 'none': estimate energy from MACs and memory traffic (labelled 'estimated')")
    p.add_argument("--force", action="store_true", help="re-profile from scratch instead of continuing the table")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_profile)

    p = sub.add_parser("predict", help="predict an architecture's latency (and energy) from a table")
    p.add_argument("--table", required=True, help="latency table (JSON)")
    p.add_argument("--arch", required=True, help="architecture string (quote it)")
    p.add_argument("--json", action="store_true", help="print JSON, with the statistic and a per-block breakdown")
    p.add_argument("--allow-mismatch", action="store_true", help="use a table made on another device or runtime")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("validate", help="measure random whole models and report the table's prediction error")
    p.add_argument("--table", required=True, help="latency table (JSON)")
    p.add_argument("--samples", type=int, default=50, help="random models to measure (default 50)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampled models (default 0)")
    p.add_argument("--calibrate", action="store_true", help="fit scale and offset on these models and store them in the table")
    p.add_argument("--device", help="device spec to measure with (default: the one stored in the table)")
    p.add_argument("--allow-mismatch", action="store_true", help="use a table made on another device or runtime")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("search", help="multi-objective search under a budget; writes the Pareto front")
    p.add_argument("--space", help=f"search space ({', '.join(SPACES.names())})")
    p.add_argument("--input", default="3x32x32", metavar="CxHxW", help="input shape (default 3x32x32)")
    p.add_argument("--classes", type=int, default=10, help="number of output classes (default 10)")
    p.add_argument("--space-opt", type=_space_option, action="append", default=[], metavar="KEY=VALUE",
                   help="a macro setting of the space (repeatable)")
    p.add_argument("--objectives", help="objectives preset, e.g. objectives/accuracy-latency.toml")
    p.add_argument("--objective", action="append", default=[], metavar="NAME:min|max",
                   help="an objective instead of a preset (repeatable; all but the first max one are cheap)")
    p.add_argument("--budget", action="append", default=[], metavar="'METRIC<=X'",
                   help="a hard budget, e.g. 'latency_ms<=5' (repeatable)")
    p.add_argument("--strategy", default="bo", help="bo, nsga2, progressive, evolution, rl or random (default bo)")
    p.add_argument("--strategy-opt", type=_key_value, action="append", default=[], metavar="KEY=VALUE",
                   help="a strategy option, e.g. pop_size=20 or reward=mnas-hard (repeatable)")
    p.add_argument("--evaluations", type=int, default=100, help="expensive evaluations to spend (default 100)")
    p.add_argument("--seed", type=int, default=0, help="the run's one seed (default 0)")
    p.add_argument("--run-dir", help="folder for the archive and the front")
    p.add_argument("--table", help="the device's latency table: provides latency_ms (and energy_mj)")
    p.add_argument("--benchmark", help="a tabular benchmark (CSV or Parquet) with an 'arch' column")
    p.add_argument("--metric", type=_key_value, action="append", default=[], metavar="NAME=COLUMN",
                   help="map a metric to a benchmark column, e.g. latency_ms=pi5_onnx_latency_ms")
    p.add_argument("--accuracy", help="accuracy estimator (default 'table' with --benchmark)")
    p.add_argument("--accuracy-opt", type=_key_value, action="append", default=[], metavar="KEY=VALUE",
                   help="an accuracy estimator option (repeatable)")
    p.add_argument("--time-limit", type=float, help="seconds one expensive evaluation may take (then: failed)")
    p.add_argument("--allow-mismatch", action="store_true", help="use a latency table made on another device or runtime")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted search from its archive")
    p.add_argument("--executor", default="local", metavar="KIND",
                   help="where expensive evaluations run: local (default), processes:N, dask-local:N, "
                        "dask://HOST:PORT[?resources=GPU=1] (Dask needs: pip install 'hwnas[dask]')")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("retrain", help="retrain a search's front from scratch at full fidelity (val and test accuracy)")
    p.add_argument("run_dir", help="a search's run directory")
    p.add_argument("--epochs", type=int, default=15, help="training epochs (default 15)")
    p.add_argument("--dataset", help="dataset (default: the one the search used)")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights and batch order (default 0)")
    p.add_argument("--limit", type=int, help="retrain only N front members, spread along the front")
    p.set_defaults(func=cmd_retrain)

    p = sub.add_parser("export", help="export the front as verified ONNX models with cards, re-measured on the device")
    p.add_argument("run_dir", help="a search's run directory")
    p.add_argument("--out", required=True, help="output folder for <name>.onnx, <name>.json, <name>.md, index.json")
    p.add_argument("--device", help="device spec to verify and measure on (default: the device of the run's table)")
    p.add_argument("--retrain", action="store_true", help="retrain each model from scratch at full fidelity first")
    p.add_argument("--epochs", type=int, default=15, help="retraining epochs (default 15)")
    p.add_argument("--limit", type=int, help="export only N front members, spread along the front")
    p.add_argument("--budget", action="append", default=[], metavar="'METRIC<=X'",
                   help="an extra budget to check the measured models against (repeatable)")
    p.add_argument("--seed", type=int, default=0, help="seed of retraining and export inputs (default 0)")
    p.add_argument("--threads", type=int, help="torch threads for retraining (default: torch's, one per core)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("report", help="write a static HTML report (plots, sortable model table) for a run")
    p.add_argument("run_dir", help="a search's run directory")
    p.add_argument("--out", help="output folder (default RUN_DIR/report)")
    p.add_argument("--export", help="export folder (default: the last hwnas export of this run)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("bench", help="compare strategies on a tabular benchmark: many seeds, random beside each, "
                                     "performance over time ('hwnas bench import --help' converts indexed tables)")
    p.add_argument("--space", required=True, help="search space of the table's architectures")
    p.add_argument("--input", default="3x32x32", metavar="CxHxW", help="input shape (default 3x32x32)")
    p.add_argument("--table", required=True, help="tabular benchmark (CSV, CSV.gz or Parquet) with an 'arch' column")
    p.add_argument("--objective", action="append", default=[], metavar="COLUMN:min|max",
                   help="an objective column (repeatable); all but the first max one are cheap")
    p.add_argument("--cheap", help="comma-separated columns that are cheap (overrides the default)")
    p.add_argument("--budget", action="append", default=[], metavar="'COLUMN<=X'", help="a hard budget (repeatable)")
    p.add_argument("--strategies", default="random,nsga2,rl,evolution,progressive,bo", help="comma-separated (random is always added)")
    p.add_argument("--peers", help="comma-separated peers run the same way, e.g. optuna-tpe,optuna-nsga2 "
                                   "(needs the extra: pip install 'hwnas[peers]')")
    p.add_argument("--reference-evaluations", type=int, metavar="N",
                   help="also run random search with N evaluations (random@N), e.g. 10x --evaluations")
    p.add_argument("--evaluations", type=int, default=100, help="expensive evaluations per run (default 100)")
    p.add_argument("--seeds", type=int, default=20, help="seeds 0..N-1 per strategy (default 20)")
    p.add_argument("--workers", type=int, help="processes (default: one per core)")
    p.add_argument("--out", required=True, help="output folder")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("bench-import", help="convert a table indexed by NAS-Bench-201 number to arch strings "
                                            "(also: hwnas bench import)")
    p.add_argument("--input", required=True, help="CSV with an index column 0..15624")
    p.add_argument("--output", required=True, help="CSV to write, with an 'arch' column")
    p.add_argument("--index-column", default="index", help="name of the index column (default 'index')")
    p.set_defaults(func=cmd_bench_import)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:2] == ["bench", "import"]:  # `hwnas bench import ...` reads better than a second command name
        argv = ["bench-import", *argv[2:]]
    args = parser.parse_args(argv)
    args.argv = argv  # the command line as given, recorded by commands that write results
    handler: Handler = args.func
    try:
        return handler(args)
    except HwnasError as exc:
        print(f"hwnas: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("hwnas: interrupted", file=sys.stderr)
        return 130


def _entry() -> None:  # console script
    sys.exit(main())


if __name__ == "__main__":
    _entry()

