"""``hwnas bench``: the field's evaluation checklist as one command.

Every strategy runs on the same tabular benchmark, with random search beside it, for several
seeds (0..seeds-1, listed in the output), and is measured over time (after 10, 25, 50, 100, ...
expensive evaluations). Only expensive objectives count as evaluations: columns marked cheap are
free, as they would be from a latency table. By default every column but the first ``max``
objective is cheap.

Writes, under ``--out D``:

* ``D/traces/<strategy>/seed<k>.csv``: one row per expensive evaluation, in query order, with
  ``eval`` (1-based), ``arch``, ``status`` and the objective values;
* ``D/summary.json``: per strategy and checkpoint, the mean and 95% confidence interval over seeds
  of the normalised hypervolume (the table's true front = 1.0; objectives scaled by the table's
  ideal and nadir, reference point 1.1 in each), IGD (in the same scaled space) and the budget
  regret (the table's best accuracy within a cost budget minus the best found within it, averaged
  over budgets at the 10/25/50/75% cost quantiles); per strategy, a two-sided Mann-Whitney U test
  against random on the final hypervolume and regret, wall time, the seeds and package versions;
* ``D/hv.png`` (hypervolume against evaluations, mean and 95% band per strategy) and
  ``D/front.png`` (the true front and each strategy's final front, from its median seed);
* a short table on the terminal.

The same command gives identical traces: each (strategy, seed) run depends only on its seed and
the table, whichever worker process runs it.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import json
import os
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hwnas.core.errors import HwnasError
from hwnas.core.pareto import budget_regret, hypervolume, igd, non_dominated
from hwnas.core.plots import new_axes
from hwnas.core.threads import torch_threads
from hwnas.evaluation.sources import BenchmarkMetrics
from hwnas.search.objectives import Constraint, ObjectiveSet, objectives_from_specs
from hwnas.search.strategies import STRATEGIES, Strategy
from hwnas.spaces import SearchSpace, get_space

CHECKPOINTS = (10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)
QUANTILES = (0.10, 0.25, 0.50, 0.75)


class BenchError(HwnasError, ValueError):
    """A benchmark request that cannot run (unknown strategy, no cost objective, ...)."""


@dataclass
class Problem:
    """Everything a run needs, loaded once per process."""

    space: SearchSpace
    objectives: ObjectiveSet
    table: BenchmarkMetrics
    accuracy: str
    cost: str
    ideal: np.ndarray
    scale: np.ndarray
    true_front: np.ndarray  # scaled
    acc_all: np.ndarray
    cost_all: np.ndarray
    budgets: np.ndarray

    @property
    def ref(self) -> np.ndarray:
        return np.full(len(self.objectives.objectives), 1.1)


def load_problem(space: str, input_shape: str, table: str | Path, objective_specs: Sequence[str],
                 budgets: Sequence[Constraint] = (), cheap: Sequence[str] | None = None) -> Problem:
    sp = get_space(space, input_shape=input_shape)
    objs = objectives_from_specs(list(objective_specs), cheap=set(cheap) if cheap is not None else None, source="--objective")
    objs = objs.with_budgets(list(budgets))
    bench = BenchmarkMetrics(table, sp)
    for m in objs.metrics:
        if m not in bench.provides:
            raise BenchError(f"{table}: no column {m!r} (columns: {', '.join(bench.columns)})")
    accuracy = next((o.name for o in objs.objectives if not o.cheap and o.direction == "max"), None)
    cost = next((o.name for o in objs.objectives if o.cheap and o.direction == "min"), None)
    if accuracy is None or cost is None:
        raise BenchError("bench needs an expensive max objective (accuracy) and a cheap min objective (a cost)")
    cols = {m: bench.column(m) for m in objs.metrics}  # one value per distinct architecture: its class mean
    F = objs.F({m: cols[m] for m in objs.names})
    feasible = objs.violation(cols, hard=True) <= 0
    ideal, nadir = F.min(0), F.max(0)
    scale = np.where(nadir > ideal, nadir - ideal, 1.0)
    Ff = (F[feasible] - ideal) / scale
    true_front = Ff[non_dominated(Ff)]
    acc_all, cost_all = cols[accuracy][feasible], cols[cost][feasible]
    return Problem(sp, objs, bench, accuracy, cost, ideal, scale, true_front, acc_all, cost_all,
                   np.quantile(cols[cost], QUANTILES))


def scores(problem: Problem, rows: list[dict[str, Any]]) -> dict[str, float]:
    """Normalised HV, IGD and mean budget regret of the evaluations in ``rows``."""
    ok = [r for r in rows if r["status"] == "complete" and r["violation"] <= 0]
    if not ok:
        return {"hv": 0.0, "igd": float("inf"), "regret": float(np.max(problem.acc_all) - np.min(problem.acc_all))}
    F = (problem.objectives.F({m: np.array([r[m] for r in ok]) for m in problem.objectives.names}) - problem.ideal) / problem.scale
    acc = np.array([r[problem.accuracy] for r in ok])
    cost = np.array([r[problem.cost] for r in ok])
    best = hypervolume(problem.true_front, problem.ref)
    return {"hv": hypervolume(F[non_dominated(F)], problem.ref) / best if best > 0 else 0.0,
            "igd": igd(F[non_dominated(F)], problem.true_front),
            "regret": float(budget_regret(acc, cost, problem.acc_all, problem.cost_all, problem.budgets).mean())}


# ----- worker side ----------------------------------------------------------------------------
@dataclass(frozen=True)
class ProblemSpec:
    """What defines a bench problem (hashable: each worker process loads it once)."""

    space: str
    input_shape: str
    table: str
    objective_specs: tuple[str, ...]
    budgets: tuple[Constraint, ...] = ()
    cheap: tuple[str, ...] | None = None

    def load(self) -> Problem:
        return _loaded(self)


@functools.lru_cache(maxsize=2)
def _loaded(spec: ProblemSpec) -> Problem:
    return load_problem(spec.space, spec.input_shape, spec.table, spec.objective_specs, spec.budgets, spec.cheap)


def strategy_class(name: str) -> type[Strategy]:
    """An hwnas strategy or a peer by name; ``random@N`` is random search with its own budget."""
    from hwnas.search.strategies.peers import PEERS

    base = name.partition("@")[0]
    if base in PEERS:
        return PEERS.get(base)
    if base not in STRATEGIES:
        raise BenchError(f"unknown strategy or peer {base!r} (strategies: {', '.join(STRATEGIES.names())}; "
                         f"peers: {', '.join(PEERS.names())})")
    return STRATEGIES.get(base)


def _run(job: tuple[ProblemSpec, str, int, int, dict[str, Any]]) -> tuple[str, int, list[dict[str, Any]], float]:
    from hwnas.search.evaluator import CandidateEvaluator
    from hwnas.search.loop import run_strategy

    spec, name, seed, evaluations, options = job
    problem = spec.load()
    evaluator = CandidateEvaluator(problem.objectives, [problem.table])
    opts = dict(options)
    cls = strategy_class(name)
    if cls.needs_cheap:
        opts.setdefault("cheap", evaluator.cheap)
    strategy = cls(problem.space, problem.objectives, np.random.default_rng(seed), **opts)
    t0 = time.perf_counter()
    with torch_threads(1):  # one run per core: no oversubscription
        trace, _, _, _ = run_strategy(strategy, evaluator, problem.objectives, evaluations)
    wall = time.perf_counter() - t0
    rows = []
    for e in trace:
        if e.expensive:
            rows.append({"eval": len(rows) + 1, "arch": e.arch.string, "status": e.status, "violation": e.violation,
                         **{m: e.metrics.get(m, float("nan")) for m in problem.objectives.metrics}})
    return name, seed, rows, wall


# ----- driver ---------------------------------------------------------------------------------
def _ci95(values: Sequence[float]) -> dict[str, Any]:
    from scipy import stats

    x = np.asarray(values, dtype=float)
    mean = float(x.mean())
    if len(x) < 2 or not np.all(np.isfinite(x)):
        return {"mean": mean, "ci95": [mean, mean], "n": len(x)}
    half = float(stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x)))
    return {"mean": mean, "ci95": [mean - half, mean + half], "n": len(x)}


def _mann_whitney(a: Sequence[float], b: Sequence[float]) -> float | None:
    from scipy.stats import mannwhitneyu

    if len(a) < 2 or len(b) < 2 or (np.allclose(a, a[0]) and np.allclose(b, b[0]) and np.isclose(a[0], b[0])):
        return None
    return float(mannwhitneyu(a, b, alternative="two-sided").pvalue)


def run_bench(
    *, space: str, table: str | Path, objectives: Sequence[str], strategies: Sequence[str], evaluations: int,
    seeds: int, out: str | Path, input_shape: str = "3x32x32", budgets: Sequence[Constraint] = (),
    cheap: Sequence[str] | None = None, workers: int | None = None, strategy_options: dict[str, dict[str, Any]] | None = None,
    plots: bool = True, command: Sequence[str] | None = None, peers: Sequence[str] = (),
    reference_evaluations: int | None = None,
) -> dict[str, Any]:
    """Run every strategy (and peer) for ``seeds`` seeds; write traces, summary.json and plots
    under ``out``. ``peers`` (``hwnas.search.strategies.peers``) run through the same loop and are
    scored the same way; ``reference_evaluations`` adds random search with that many
    evaluations (``random@N``), the bar a sample-efficient strategy has to reach."""
    from hwnas.core.versions import versions
    from hwnas.search.strategies.peers import PEERS, require_optuna

    for name in strategies:
        if name in PEERS:
            raise BenchError(f"{name!r} is a peer: give it with --peers")
        STRATEGIES.get(name)
    for name in peers:
        PEERS.get(name)
    if peers:
        require_optuna()  # a missing optional extra fails before any work, in one line
    if "random" not in strategies:
        strategies = ["random", *strategies]  # random search sits beside every comparison
    strategies = [*strategies, *[p for p in peers if p not in strategies]]
    if evaluations < 1 or seeds < 1:
        raise BenchError("--evaluations and --seeds must be >= 1")
    budgets_of = {name: evaluations for name in strategies}
    if reference_evaluations:
        if reference_evaluations < 1:
            raise BenchError("--reference-evaluations must be >= 1")
        strategies.append(f"random@{reference_evaluations}")
        budgets_of[strategies[-1]] = reference_evaluations
    spec = ProblemSpec(space, input_shape, str(table), tuple(objectives), tuple(budgets),
                       tuple(cheap) if cheap is not None else None)
    problem = spec.load()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    options = strategy_options or {}
    # the longest runs first, so that a pool of workers ends together
    jobs = sorted(((spec, name, seed, budgets_of[name], options.get(name.partition("@")[0], {}))
                   for name in strategies for seed in range(seeds)), key=lambda j: -j[3])
    workers = max(1, min(workers or os.cpu_count() or 1, len(jobs)))
    t0 = time.perf_counter()
    if workers == 1:
        results = [_run(j) for j in jobs]
    else:
        import multiprocessing as mp

        with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
            results = list(pool.map(_run, jobs, chunksize=1))
    wall_total = time.perf_counter() - t0

    metrics = problem.objectives.metrics
    traces: dict[str, dict[int, list[dict[str, Any]]]] = {n: {} for n in strategies}
    walls: dict[str, list[float]] = {n: [] for n in strategies}
    for name, seed, rows, wall in results:
        traces[name][seed] = rows
        walls[name].append(wall)
        folder = out / "traces" / name
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / f"seed{seed}.csv").open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["eval", "arch", "status", *metrics])
            for r in rows:
                w.writerow([r["eval"], r["arch"], r["status"], *(repr(float(r[m])) for m in metrics)])

    checkpoints = [c for c in CHECKPOINTS if c < evaluations] + [evaluations]
    summary_strategies: dict[str, Any] = {}
    finals: dict[str, dict[str, list[float]]] = {}
    for name in strategies:
        per_cp: dict[str, Any] = {}
        for cp in [c for c in CHECKPOINTS if c < budgets_of[name]] + [budgets_of[name]]:
            s = [scores(problem, traces[name][seed][:cp]) for seed in range(seeds)]
            per_cp[str(cp)] = {k: _ci95([x[k] for x in s]) for k in ("hv", "igd", "regret")}
        final = [scores(problem, traces[name][seed]) for seed in range(seeds)]
        finals[name] = {k: [x[k] for x in final] for k in ("hv", "igd", "regret")}
        summary_strategies[name] = {"evaluations": budgets_of[name], "checkpoints": per_cp,
                                    "final": {k: _ci95(finals[name][k]) for k in ("hv", "igd", "regret")},
                                    "peer": name in PEERS,
                                    "wall_s": {"total": float(sum(walls[name])), "per_run": _ci95(walls[name])}}
    for name in strategies:
        summary_strategies[name]["vs_random"] = {
            "test": "Mann-Whitney U, two-sided, over seeds, at the final checkpoint",
            "hv_p": _mann_whitney(finals[name]["hv"], finals["random"]["hv"]) if name != "random" else None,
            "regret_p": _mann_whitney(finals[name]["regret"], finals["random"]["regret"]) if name != "random" else None,
            "regret_ratio": (float(np.mean(finals[name]["regret"]) / np.mean(finals["random"]["regret"]))
                             if np.mean(finals["random"]["regret"]) > 0 else None),
        }
    digest = hashlib.sha256(Path(table).read_bytes()).hexdigest()
    summary = {
        "command": list(command) if command is not None else sys.argv,
        "table": str(table), "table_sha256": digest, "space": space, "objectives": problem.objectives.to_dict(),
        "accuracy": problem.accuracy, "cost": problem.cost, "evaluations": evaluations,
        "scoring": {"distinct_architectures": len(problem.table.ids()),
                    "isomorphic": "a class of isomorphic architectures takes the mean of its rows' values, "
                                  "in the searches and in the true front alike"},
        "seeds": list(range(seeds)), "checkpoints": checkpoints,
        "hypervolume": {"normalised_to": "the table's true front (feasible, distinct architectures) = 1.0",
                        "scaling": "each objective (minimised) scaled by the table's ideal and nadir",
                        "reference_point": problem.ref.tolist(), "ideal": problem.ideal.tolist(),
                        "nadir": (problem.ideal + problem.scale).tolist(), "true_front_size": len(problem.true_front)},
        "budget_regret": {"quantiles": list(QUANTILES), "budgets": problem.budgets.tolist(),
                          "definition": "table's best accuracy within the budget minus the best found, averaged"},
        "strategies": summary_strategies, "wall_s": wall_total, "workers": workers, "versions": versions(),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    if plots:
        _plot_hv(out / "hv.png", problem, traces, seeds, evaluations, finals)
        _plot_fronts(out / "front.png", problem, traces, finals, seeds)
    return summary


def _plot_hv(path: Path, problem: Problem, traces: dict[str, dict[int, list[dict[str, Any]]]], seeds: int, evaluations: int,
             finals: dict[str, dict[str, list[float]]]) -> None:
    grid = np.unique(np.linspace(1, evaluations, min(evaluations, 50)).astype(int))
    fig, ax = new_axes(6.4, 4.2)
    for name, runs in traces.items():
        if "@" in name:  # a reference with its own budget: where it ends, as a level
            ax.axhline(float(np.mean(finals[name]["hv"])), color="0.3", ls=":", lw=1.5, label=f"{name} (final)")
            continue
        hv = np.array([[scores(problem, runs[s][:k])["hv"] for k in grid] for s in range(seeds)])
        mean = hv.mean(0)
        ci = [_ci95(hv[:, j])["ci95"] for j in range(len(grid))]
        ax.plot(grid, mean, label=name, lw=2 if name == "random" else 1.5, ls="--" if name == "random" else "-")
        ax.fill_between(grid, [c[0] for c in ci], [c[1] for c in ci], alpha=0.2)
    ax.set_xlabel("expensive evaluations")
    ax.set_ylabel("normalised hypervolume (true front = 1)")
    ax.set_title(f"{problem.accuracy} vs {problem.cost}: mean and 95% CI over {seeds} seeds", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)


def _plot_fronts(path: Path, problem: Problem, traces: dict[str, dict[int, list[dict[str, Any]]]],
                 finals: dict[str, dict[str, list[float]]], seeds: int) -> None:
    fig, ax = new_axes(6.4, 4.2)
    names = problem.objectives.names
    ai, ci = names.index(problem.accuracy), names.index(problem.cost)

    def unscale(F: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raw = F * problem.scale + problem.ideal
        return raw[:, ci], -raw[:, ai]

    x, y = unscale(problem.true_front)
    order = np.argsort(x)
    ax.plot(x[order], y[order], "k-", lw=2, label="true front")
    for name, runs in traces.items():
        median_seed = int(np.argsort(finals[name]["hv"])[len(finals[name]["hv"]) // 2])
        ok = [r for r in runs[median_seed] if r["status"] == "complete" and r["violation"] <= 0]
        if not ok:
            continue
        F = (problem.objectives.F({m: np.array([r[m] for r in ok]) for m in names}) - problem.ideal) / problem.scale
        fx, fy = unscale(F[non_dominated(F)])
        o = np.argsort(fx)
        ax.plot(fx[o], fy[o], "o-", ms=3, lw=1, label=f"{name} (seed {median_seed}, median HV)")
    ax.set_xlabel(problem.cost)
    ax.set_ylabel(problem.accuracy)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)


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


# ----- importing public benchmarks ------------------------------------------------------------
def import_nb201(src: str | Path, dst: str | Path, *, index_column: str = "index") -> int:
    """Convert a table indexed by NAS-Bench-201 number (0..15624) to one with an ``arch`` column,
    using the benchmark's own order. Returns the number of rows written."""
    from hwnas.spaces.nb201 import benchmark_order

    src, dst = Path(src), Path(dst)
    if not src.is_file():
        raise BenchError(f"{src}: no such table")
    order = benchmark_order()
    with src.open(newline="") as f:
        reader = csv.DictReader(f)
        cols = reader.fieldnames or []
        if index_column not in cols:
            raise BenchError(f"{src}: no index column {index_column!r} (columns: {', '.join(cols)})")
        rows = list(reader)
    seen: set[int] = set()
    out_rows = []
    for line, row in enumerate(rows, start=2):
        try:
            i = int(row[index_column])
        except (TypeError, ValueError):
            raise BenchError(f"{src}: line {line}: index {row[index_column]!r} is not an integer") from None
        if not 0 <= i < len(order):
            raise BenchError(f"{src}: line {line}: index {i} is outside 0..{len(order) - 1}")
        if i in seen:
            raise BenchError(f"{src}: line {line}: index {i} appears twice")
        seen.add(i)
        out_rows.append({"arch": order[i], **{c: row[c] for c in cols if c != index_column}})
    dst.parent.mkdir(parents=True, exist_ok=True)
    with dst.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["arch", *[c for c in cols if c != index_column]])
        w.writeheader()
        w.writerows(out_rows)
    return len(out_rows)
