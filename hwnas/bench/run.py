"""``hwnas bench``: the field's evaluation checklist as one command.

Every strategy runs on the same tabular benchmark, with random search beside it, for several
seeds (0..seeds-1), and is measured over time (after 10, 25, 50, 100, ... expensive
evaluations). Only expensive objectives count as evaluations; by default every column but the
first ``max`` objective is cheap. Writes, under ``--out``, each run's trace, ``summary.json``
(mean and 95% interval per strategy and checkpoint, tests against random, versions) and the
plots. Raises BenchError for a request that cannot run (an unknown strategy or peer, a missing
column).

How it works, and why: ``docs/design.md`` (hwnas.bench.run).
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hwnas.core.processes import die_with_parent
from hwnas.core.files import output_folder, write_csv, write_json
from hwnas.bench.problem import QUANTILES, BenchError, Scoring, loaded, scores
from hwnas.optimize.problem import Problem
from hwnas.bench.stats import ci95, mann_whitney
from hwnas.core.threads import torch_threads
from hwnas.optimize.strategies import STRATEGIES, Strategy

CHECKPOINTS = (10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)


def strategy_class(name: str) -> type[Strategy]:
    """An hwnas strategy or a peer by name; ``random@N`` is random search with its own evaluation count."""
    from hwnas.optimize.strategies.peers import PEERS

    base = name.partition("@")[0]
    if base in PEERS:
        return PEERS.get(base)
    if base not in STRATEGIES:
        raise BenchError(f"unknown strategy or peer {base!r} (strategies: {', '.join(STRATEGIES.names())}; "
                         f"peers: {', '.join(PEERS.names())})")
    return STRATEGIES.get(base)


def _run(job: tuple[Problem, str, int, int, Mapping[str, Any]]) -> tuple[str, int, list[dict[str, Any]], float]:
    from hwnas.optimize.evaluator import CandidateEvaluator
    from hwnas.optimize.loop import run_strategy

    spec, name, seed, evaluations, options = job
    problem = loaded(spec)
    evaluator = CandidateEvaluator(problem.objectives, [problem.table])
    strategy = strategy_class(name).create(problem.space, evaluator.objectives, np.random.default_rng(seed), options,
                                           cheap=evaluator.cheap)
    t0 = time.perf_counter()
    with torch_threads(1):  # one run per core: no oversubscription
        trace, _, _, _ = run_strategy(strategy, evaluator, evaluator.objectives, evaluations)
    wall = time.perf_counter() - t0
    rows = []
    for e in trace:
        if e.expensive:
            rows.append({"eval": len(rows) + 1, "arch": e.arch.string, "status": e.status, "violation": e.violation,
                         **{m: e.metrics.get(m, float("nan")) for m in problem.objectives.metrics}})
    return name, seed, rows, wall


@dataclass(frozen=True)
class BenchPlan:
    """What a bench runs: the strategies (random search is always added), Optuna peers, the
    expensive evaluations per run, the seeds (0..seeds-1), a ``random@N`` reference with N
    evaluations, and options per strategy name."""

    strategies: Sequence[str]
    evaluations: int
    seeds: int
    peers: Sequence[str] = ()
    reference_evaluations: int | None = None
    strategy_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


def _plan(plan: BenchPlan) -> dict[str, int]:
    """Every run's strategy and its evaluation count, in order: random search first (it sits beside
    every comparison), the strategies, the peers, then ``random@N``. Unknown names, a missing
    Optuna and impossible counts fail here, before any work, in one line."""
    from hwnas.optimize.strategies.peers import PEERS, require_optuna

    strategies, peers, evaluations, seeds = plan.strategies, plan.peers, plan.evaluations, plan.seeds
    reference_evaluations = plan.reference_evaluations
    for name in strategies:
        if name in PEERS:
            raise BenchError(f"{name!r} is a peer: give it with --peers")
        STRATEGIES.get(name)
    for name in peers:
        PEERS.get(name)
    if peers:
        require_optuna()
    if evaluations < 1 or seeds < 1:
        raise BenchError("--evaluations and --seeds must be >= 1")
    names = list(strategies) if "random" in strategies else ["random", *strategies]
    names += [p for p in peers if p not in names]
    evaluations_of = {name: evaluations for name in names}
    if reference_evaluations:
        if reference_evaluations < 1:
            raise BenchError("--reference-evaluations must be >= 1")
        evaluations_of[f"random@{reference_evaluations}"] = reference_evaluations
    return evaluations_of


def _execute(jobs: list[tuple[Any, ...]], workers: int) -> list[Any]:
    """Every job's result, in order: here in turn, or on ``workers`` spawned processes."""
    if workers == 1:
        return [_run(j) for j in jobs]
    import multiprocessing as mp

    with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=die_with_parent,
                             initargs=(os.getpid(),)) as pool:
        return list(pool.map(_run, jobs, chunksize=1))


def run_bench(problem: Problem, plan: BenchPlan, out: str | Path, *, workers: int | None = None, plots: bool = True,
              command: Sequence[str] | None = None) -> dict[str, Any]:
    """Run every strategy (and peer) of ``plan`` on ``problem`` (a tabular one:
    :func:`~hwnas.bench.problem.tabular_problem`) for its seeds; write traces, summary.json and
    plots under ``out``. Peers (``hwnas.optimize.strategies.peers``) run through the same loop and
    are scored the same way; ``random@N`` is the bar a sample-efficient strategy has to reach.
    Raises BenchError for a plan or problem that cannot run."""
    from hwnas.core.versions import versions

    evaluations_of = _plan(plan)
    strategies, evaluations, seeds = list(evaluations_of), plan.evaluations, plan.seeds
    scoring = loaded(problem)
    table = str(problem.sources.benchmark)
    out = output_folder(out, "bench folder")
    # the longest runs first, so that a pool of workers ends together
    jobs = sorted(((problem, name, seed, evaluations_of[name], plan.strategy_options.get(name.partition("@")[0], {}))
                   for name in strategies for seed in range(seeds)), key=lambda j: -j[3])
    workers = max(1, min(workers or os.cpu_count() or 1, len(jobs)))
    t0 = time.perf_counter()
    results = _execute(jobs, workers)
    wall_total = time.perf_counter() - t0

    traces, walls = _write_traces(out, scoring, strategies, results)
    summary_strategies, finals = _score_strategies(scoring, strategies, traces, walls, evaluations_of, seeds)
    checkpoints = [c for c in CHECKPOINTS if c < evaluations] + [evaluations]
    digest = hashlib.sha256(Path(table).read_bytes()).hexdigest()
    summary = {
        "command": list(command) if command is not None else sys.argv,
        "table": str(table), "table_sha256": digest, "space": problem.space, "objectives": scoring.objectives.to_dict(),
        "accuracy": scoring.accuracy, "cost": scoring.cost, "evaluations": evaluations,
        "scoring": {"distinct_architectures": len(scoring.table.ids()),
                    "isomorphic": "a class of isomorphic architectures takes the mean of its rows' values, "
                                  "in the searches and in the true front alike"},
        "seeds": list(range(seeds)), "checkpoints": checkpoints,
        "hypervolume": {"normalised_to": "the table's true front (feasible, distinct architectures) = 1.0",
                        "scaling": "each objective (minimised) scaled by the table's ideal and nadir",
                        "reference_point": scoring.ref.tolist(), "ideal": scoring.ideal.tolist(),
                        "nadir": (scoring.ideal + scoring.scale).tolist(), "true_front_size": len(scoring.true_front)},
        "budget_regret": {"quantiles": list(QUANTILES), "budgets": scoring.cost_levels.tolist(),
                          "definition": "table's best accuracy within the budget minus the best found, averaged"},
        "strategies": summary_strategies, "wall_s": wall_total, "workers": workers, "versions": versions(),
    }
    write_json(out / "summary.json", summary)
    if plots:
        from hwnas.bench.plots import plot_fronts, plot_hv

        plot_hv(out / "hv.png", scoring, traces, seeds, evaluations, finals)
        plot_fronts(out / "front.png", scoring, traces, finals, seeds)
    return summary


def print_summary(summary: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"{summary['accuracy']} vs {summary['cost']}: {len(summary['seeds'])} seeds x "
                    f"{summary['evaluations']} evaluations (mean [95% CI])")
    for col in ("strategy", "evals", "norm. HV", "IGD", "budget regret", "regret/random", "p (HV, regret) vs random", "s/run"):
        t.add_column(col)
    for name, s in summary["strategies"].items():
        c = s["final"]
        vr = s["vs_random"]
        p = "-" if name == "random" else f"{vr['hv_p'] if vr['hv_p'] is not None else float('nan'):.2g}, " \
            f"{vr['regret_p'] if vr['regret_p'] is not None else float('nan'):.2g}"
        t.add_row(f"{name} (peer)" if s["peer"] else name, str(s["evaluations"]), f"{c['hv']['mean']:.4f} [{c['hv']['ci95'][0]:.4f}, {c['hv']['ci95'][1]:.4f}]",
                  f"{c['igd']['mean']:.4f}", f"{c['regret']['mean']:.3f} [{c['regret']['ci95'][0]:.3f}, {c['regret']['ci95'][1]:.3f}]",
                  f"{vr['regret_ratio']:.2f}" if vr["regret_ratio"] is not None else "-", p,
                  f"{s['wall_s']['per_run']['mean']:.2f}")
    Console().print(t)


Traces = dict[str, dict[int, list[dict[str, Any]]]]  # strategy -> seed -> rows (one per expensive evaluation)


def _write_traces(out: Path, problem: Scoring, strategies: Sequence[str],
                  results: Sequence[tuple[str, int, list[dict[str, Any]], float]]) -> tuple[Traces, dict[str, list[float]]]:
    """One CSV per (strategy, seed) under ``out/traces``; returns the traces and wall times."""
    metrics = problem.objectives.metrics
    traces: Traces = {n: {} for n in strategies}
    walls: dict[str, list[float]] = {n: [] for n in strategies}
    for name, seed, rows, wall in results:
        traces[name][seed] = rows
        walls[name].append(wall)
        folder = out / "traces" / name
        output_folder(folder, "traces folder")
        write_csv(folder / f"seed{seed}.csv", ["eval", "arch", "status", *metrics],
                  ([r["eval"], r["arch"], r["status"], *(repr(float(r[m])) for m in metrics)] for r in rows))
    return traces, walls


def _score_strategies(problem: Scoring, strategies: Sequence[str], traces: Traces, walls: dict[str, list[float]],
                      evaluations_of: dict[str, int], seeds: int) -> tuple[dict[str, Any], dict[str, dict[str, list[float]]]]:
    """Per strategy: scores at each checkpoint and at the end (mean and 95% CI over seeds), and
    the comparison with random search."""
    from hwnas.optimize.strategies.peers import PEERS

    summary_strategies: dict[str, Any] = {}
    finals: dict[str, dict[str, list[float]]] = {}
    for name in strategies:
        per_cp: dict[str, Any] = {}
        for cp in [c for c in CHECKPOINTS if c < evaluations_of[name]] + [evaluations_of[name]]:
            s = [scores(problem, traces[name][seed][:cp]) for seed in range(seeds)]
            per_cp[str(cp)] = {k: ci95([x[k] for x in s]) for k in ("hv", "igd", "regret")}
        final = [scores(problem, traces[name][seed]) for seed in range(seeds)]
        finals[name] = {k: [x[k] for x in final] for k in ("hv", "igd", "regret")}
        summary_strategies[name] = {"evaluations": evaluations_of[name], "checkpoints": per_cp,
                                    "final": {k: ci95(finals[name][k]) for k in ("hv", "igd", "regret")},
                                    "peer": name in PEERS,
                                    "wall_s": {"total": float(sum(walls[name])), "per_run": ci95(walls[name])}}
    for name in strategies:
        summary_strategies[name]["vs_random"] = {
            "test": "Mann-Whitney U, two-sided, over seeds, at the final checkpoint",
            "hv_p": mann_whitney(finals[name]["hv"], finals["random"]["hv"]) if name != "random" else None,
            "regret_p": mann_whitney(finals[name]["regret"], finals["random"]["regret"]) if name != "random" else None,
            "regret_ratio": (float(np.mean(finals[name]["regret"]) / np.mean(finals["random"]["regret"]))
                             if np.mean(finals["random"]["regret"]) > 0 else None),
        }
    return summary_strategies, finals
