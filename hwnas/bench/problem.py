"""A bench problem: the search ``Problem`` on a tabular benchmark, with its true front and how a
run's trace is scored against it (normalised hypervolume, IGD, budget regret)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hwnas.core.errors import HwnasError
from hwnas.core.pareto import budget_regret, hypervolume, igd, non_dominated
from hwnas.evaluation.sources import BenchmarkMetrics
from hwnas.optimize.objectives import Constraint, ObjectiveSet, objectives_from_specs
from hwnas.optimize.problem import Problem, Sources
from hwnas.spaces import SearchSpace

QUANTILES = (0.10, 0.25, 0.50, 0.75)


class BenchError(HwnasError, ValueError):
    """A benchmark request that cannot run (unknown strategy, no cost objective, ...)."""


@dataclass
class Scoring:
    """A search problem on a tabular benchmark, loaded once per process with what scores a trace
    against it: the true front (scaled), every feasible architecture's accuracy and cost, and the
    cost quantiles at which budget regret is averaged."""

    problem: Problem
    space: SearchSpace
    objectives: ObjectiveSet  # each metric's cheapness resolved from the benchmark
    table: BenchmarkMetrics
    accuracy: str
    cost: str
    ideal: np.ndarray
    scale: np.ndarray
    true_front: np.ndarray  # scaled
    acc_all: np.ndarray
    cost_all: np.ndarray
    cost_levels: np.ndarray  # the cost quantiles QUANTILES, at which budget regret is averaged

    @property
    def ref(self) -> np.ndarray:
        return np.full(len(self.objectives.objectives), 1.1)


def tabular_problem(space: str, table: str | Path, objective_specs: Sequence[str], *, input_shape: str = "3x32x32",
                    budgets: Sequence[Constraint | str] = (), cheap: Sequence[str] | None = None) -> Problem:
    """The search problem of a bench: ``space`` on the benchmark ``table``, whose expensive
    objectives' columns stand for trainings (by default every objective but the first max one is
    cheap; ``cheap`` names the cheap ones)."""
    objectives = objectives_from_specs(list(objective_specs), cheap=set(cheap) if cheap is not None else None,
                                       source="--objective")
    return Problem.build(space, objectives, input_shape=input_shape, budgets=budgets,
                         sources=Sources(benchmark=table, accuracy="table"))


def load_problem(problem: Problem) -> Scoring:
    """``problem`` (on a tabular benchmark) with its true front; raises BenchError when the
    benchmark lacks a metric or the objectives have no accuracy and cost to trade."""
    sp = problem.build_space()
    table = problem.sources.benchmark
    if table is None:
        raise BenchError("a bench problem needs a tabular benchmark (Sources(benchmark=...))")
    bench = BenchmarkMetrics(table, sp, columns=dict(problem.sources.columns) or None,
                             expensive=problem.objectives.expensive)  # the expensive columns stand for trainings
    for m in problem.objectives.metrics:
        if m not in bench.provides:
            raise BenchError(f"{table}: no column {m!r} (columns: {', '.join(bench.columns)})")
    objs = problem.objectives.resolved(bench.is_cheap)
    bench.check_values(objs.metrics, objs.costs)
    accuracy = next((o.name for o in objs.objectives if not o.cheap and o.direction == "max"), None)
    cost = next((o.name for o in objs.objectives if o.cheap and o.direction == "min"), None)
    if accuracy is None or cost is None:
        raise BenchError("bench needs an expensive max objective (accuracy) and a cheap min objective (a cost)")
    cols = {m: bench.column(m) for m in objs.metrics}  # one value per distinct architecture: its class mean
    F = objs.F({m: cols[m] for m in objs.names})
    feasible = objs.feasible(cols)
    ideal, nadir = F.min(0), F.max(0)
    scale = np.where(nadir > ideal, nadir - ideal, 1.0)
    Ff = (F[feasible] - ideal) / scale
    true_front = Ff[non_dominated(Ff)]
    acc_all, cost_all = cols[accuracy][feasible], cols[cost][feasible]
    return Scoring(problem, sp, objs, bench, accuracy, cost, ideal, scale, true_front, acc_all, cost_all,
                   np.quantile(cols[cost], QUANTILES))


def scores(problem: Scoring, rows: list[dict[str, Any]]) -> dict[str, float]:
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
            "regret": float(budget_regret(acc, cost, problem.acc_all, problem.cost_all, problem.cost_levels).mean())}


_LOADED: dict[str, Scoring] = {}


def loaded(problem: Problem) -> Scoring:
    """``load_problem``, once per process for each problem (every job of a worker shares it)."""
    key = repr(problem)
    if key not in _LOADED:
        if len(_LOADED) >= 2:
            _LOADED.clear()
        _LOADED[key] = load_problem(problem)
    return _LOADED[key]
