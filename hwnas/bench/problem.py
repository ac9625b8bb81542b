"""A bench problem: a tabular benchmark, its objectives and budgets, the true front, and how a
run's trace is scored against them (normalised hypervolume, IGD, budget regret)."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hwnas.core.errors import HwnasError
from hwnas.core.pareto import budget_regret, hypervolume, igd, non_dominated
from hwnas.evaluation.sources import BenchmarkMetrics
from hwnas.optimize.objectives import Constraint, ObjectiveSet, objectives_from_specs
from hwnas.spaces import SearchSpace, get_space

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
    cost_levels: np.ndarray  # the cost quantiles QUANTILES, at which budget regret is averaged

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
            "regret": float(budget_regret(acc, cost, problem.acc_all, problem.cost_all, problem.cost_levels).mean())}


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


