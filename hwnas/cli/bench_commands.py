"""The benchmark commands: ``hwnas bench`` (strategies on a tabular benchmark), ``hwnas
bench-real`` (a search against hand-picked models on real data) and ``hwnas bench-import``."""

from __future__ import annotations

import argparse


def cmd_bench_real(args: argparse.Namespace) -> int:
    from hwnas.bench.real import RealBenchPlan, results_markdown, run_real_bench
    from hwnas.optimize.config import ConfigError
    from hwnas.optimize.defaults import train_sources_defaults

    try:
        widths = tuple(float(w) for w in args.widths.split(",") if w.strip())
    except ValueError:
        raise ConfigError(f"--widths {args.widths!r}: give numbers separated by commas, e.g. 0.35,0.5") from None
    # the searches start from what `hwnas search --accuracy train --time-budget` uses
    search_options, fidelity = train_sources_defaults("train", dict(args.search_opt), args.scheduler,
                                                      dict(args.scheduler_opt))
    plan = RealBenchPlan(dataset=args.dataset, input_shape=args.input, scale=args.scale,
                         reference_width=args.reference_width, widths=widths, strategy=args.strategy,
                         time_budget_s=args.time_budget, seeds=args.seeds, retrain_seeds=args.retrain_seeds,
                         retrain_epochs=args.retrain_epochs, search_options=search_options, fidelity=fidelity,
                         strategy_options=dict(args.strategy_opt),
                         claims=not args.no_claims)
    summary = run_real_bench(plan, args.out, device=args.device, command=["hwnas", *args.argv])
    print(results_markdown(summary))
    print(f"summary.json, results.md and accuracy-latency.png in {args.out}/")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from hwnas.bench.problem import tabular_problem
    from hwnas.bench.run import BenchError, BenchPlan, print_summary, run_bench

    if not args.objective:
        raise BenchError("give the objectives: --objective accuracy:max --objective <cost column>:min")
    problem = tabular_problem(args.space, args.table, args.objective, input_shape=args.input, budgets=args.budget,
                              cheap=args.cheap.split(",") if args.cheap is not None else None)
    plan = BenchPlan([s.strip() for s in args.strategies.split(",") if s.strip()], args.evaluations, args.seeds,
                     peers=[s.strip() for s in (args.peers or "").split(",") if s.strip()],
                     reference_evaluations=args.reference_evaluations)
    summary = run_bench(problem, plan, args.out, workers=args.workers, command=["hwnas", *args.argv])
    print_summary(summary)
    print(f"seeds {summary['seeds'][0]}..{summary['seeds'][-1]}, {summary['wall_s']:.1f} s on {summary['workers']} "
          f"worker(s); traces, summary.json, hv.png and front.png in {args.out}/")
    return 0


def cmd_bench_import(args: argparse.Namespace) -> int:
    from hwnas.bench.importing import import_nb201

    n = import_nb201(args.input, args.output, index_column=args.index_column)
    print(f"wrote {args.output}: {n} rows, 'arch' in NAS-Bench-201 cell strings (benchmark index order)")
    return 0
