"""``nsga2``: pymoo's NSGA-II on the integer encoding, driven through pymoo's own ask/tell.

Sampling, crossover, mutation and duplicate elimination are the space's own operators (which
respect inactive genes and isomorphism), handed pymoo's random state, which is set to the run's
Generator. Hard budgets are one inequality constraint (the summed relative violation), so pymoo's
constrained dominance ranks feasible candidates first and infeasible ones by violation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.core.crossover import Crossover
from pymoo.core.duplicate import DuplicateElimination
from pymoo.core.mutation import Mutation
from pymoo.core.problem import Problem
from pymoo.core.sampling import Sampling

from hwnas.evaluation.sources import Evaluation
from hwnas.optimize.objectives import ObjectiveSet
from hwnas.optimize.strategies.base import Strategy
from hwnas.spaces.base import Architecture, SearchSpace


class _SpaceSampling(Sampling):
    def __init__(self, space: SearchSpace) -> None:
        super().__init__()
        self.space = space

    def _do(self, problem: Problem, n_samples: int, *args: Any, random_state: np.random.Generator | None = None, **kwargs: Any) -> np.ndarray:
        assert random_state is not None
        return np.array([a.genes for a in self.space.sample(random_state, n_samples)])


class _SpaceCrossover(Crossover):
    def __init__(self, space: SearchSpace, prob: float) -> None:
        super().__init__(n_parents=2, n_offsprings=2, prob=prob)
        self.space = space

    def _do(self, problem: Problem, X: np.ndarray, *args: Any, random_state: np.random.Generator | None = None, **kwargs: Any) -> np.ndarray:
        assert random_state is not None
        _, n_matings, _ = X.shape
        Y = np.empty_like(X)
        for k in range(n_matings):
            a, b = (self.space.decode(X[i, k]) for i in range(2))
            c, d = self.space.crossover(a, b, random_state)
            Y[0, k], Y[1, k] = c.genes, d.genes
        return Y


class _SpaceMutation(Mutation):
    def __init__(self, space: SearchSpace, rate: float | None) -> None:
        super().__init__()
        self.space, self.rate = space, rate

    def _do(self, problem: Problem, X: np.ndarray, *args: Any, random_state: np.random.Generator | None = None, **kwargs: Any) -> np.ndarray:
        assert random_state is not None
        return np.array([self.space.mutate(self.space.decode(x), random_state, rate=self.rate).genes for x in X])


class _SameArchitecture(DuplicateElimination):
    """Duplicates are candidates with the same architecture id (isomorphic cells included),
    found by hashing: pymoo's element-wise elimination compares every pair."""

    def __init__(self, space: SearchSpace) -> None:
        super().__init__()
        self.space = space
        self._ids: dict[tuple[int, ...], str] = {}

    def _id(self, x: np.ndarray) -> str:
        key = tuple(int(v) for v in x)
        if key not in self._ids:
            self._ids[key] = self.space.decode(key).id
        return self._ids[key]

    def _do(self, pop: Any, other: Any, is_duplicate: np.ndarray) -> np.ndarray:
        seen = {self._id(o.X) for o in other} if other is not None else set()
        for i, ind in enumerate(pop):
            h = self._id(ind.X)
            if h in seen:
                is_duplicate[i] = True
            else:
                seen.add(h)
        return is_duplicate


@dataclass(frozen=True)
class NSGA2Options:
    pop_size: int = 20
    crossover_prob: float = 0.9
    mutation_rate: float | None = None  # per gene; None: the space's own default


class NSGA2Strategy(Strategy):
    name = "nsga2"
    description = "NSGA-II (pymoo) with the space's own operators and constrained dominance"
    Options = NSGA2Options
    option_bounds = {"pop_size": (2, 100_000), "crossover_prob": (0.0, 1.0), "mutation_rate": (0.0, 1.0)}

    def __init__(self, space: SearchSpace, objectives: ObjectiveSet, rng: np.random.Generator,
                 options: NSGA2Options | None = None) -> None:
        super().__init__(space, objectives, rng, options)
        pop_size, crossover_prob, mutation_rate = self.options.pop_size, self.options.crossover_prob, self.options.mutation_rate
        card = np.asarray(space.cardinalities())
        self.problem = Problem(n_var=len(card), n_obj=len(objectives.objectives), n_ieq_constr=1,
                               xl=np.zeros(len(card)), xu=card - 1, vtype=int)
        self.algorithm = NSGA2(
            pop_size=pop_size, sampling=_SpaceSampling(space), crossover=_SpaceCrossover(space, crossover_prob),
            mutation=_SpaceMutation(space, mutation_rate), eliminate_duplicates=_SameArchitecture(space),
        )
        self.algorithm.setup(self.problem, termination=("n_gen", 10**9), seed=0, verbose=False)
        self.algorithm.random_state = rng  # one generator per run: pymoo draws from ours
        self._pending: Any = None

    def ask(self) -> list[Architecture]:
        self._pending = self.algorithm.ask()
        archs = [self.space.decode(x) for x in self._pending.get("X")]
        self._pending.set("X", np.array([a.genes for a in archs]))
        return archs

    def tell(self, evaluations: Sequence[Evaluation]) -> None:
        pop = self._pending
        pop.set("F", self.objective_matrix(evaluations))
        pop.set("G", self.violations(evaluations)[:, None])
        for ind in pop:
            ind.evaluated = {"F", "G", "H"}
        self.algorithm.tell(infills=pop)
        self._pending = None

    def state(self) -> dict[str, Any]:
        return {"generation": int(self.algorithm.n_iter or 0)}
