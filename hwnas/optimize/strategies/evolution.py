"""``evolution``: regularized (aging) evolution (Real et al., 2019), multi-objective.

A population of the ``population`` most recent feasible evaluations. Each child: draw
``sample_size`` members, take the best by non-dominated rank within the sample (ties broken by
the generator), mutate it. The oldest member dies when a child joins. Infeasible children (hard
budget) never join; the loop has already kept them from the expensive evaluation.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from collections.abc import Sequence
from typing import Any

import numpy as np
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

from hwnas.evaluation.sources import Evaluation
from hwnas.optimize.objectives import ObjectiveSet, is_feasible
from hwnas.optimize.strategies.base import Strategy
from hwnas.spaces.base import Architecture, SearchSpace


@dataclass(frozen=True)
class EvolutionOptions:
    population: int = 20
    sample_size: int = 5  # candidates per tournament
    batch: int = 1  # candidates per ask


class RegularizedEvolution(Strategy):
    name = "evolution"
    description = "regularized (aging) evolution with Pareto-rank tournaments"
    Options = EvolutionOptions
    option_bounds = {"population": (2, 100_000), "sample_size": (1, 100_000), "batch": (1, 100_000)}

    def __init__(self, space: SearchSpace, objectives: ObjectiveSet, rng: np.random.Generator,
                 options: EvolutionOptions | None = None) -> None:
        super().__init__(space, objectives, rng, options)
        self.size, self.sample_size, self.batch = self.options.population, self.options.sample_size, self.options.batch
        self.members: deque[tuple[Architecture, np.ndarray]] = deque()
        self.seen: set[str] = set()

    def ask(self) -> list[Architecture]:
        if len(self.members) < self.size:  # still filling the population at random
            out = []
            for _ in range(100):
                for a in self.space.sample(self.rng, self.batch - len(out)):
                    if a.id not in self.seen:
                        out.append(a)
                        self.seen.add(a.id)
                if len(out) == self.batch:
                    break
            return out or self.space.sample(self.rng, 1)
        out = []
        for _ in range(self.batch):
            idx = self.rng.choice(len(self.members), size=min(self.sample_size, len(self.members)), replace=False)
            F = np.array([self.members[i][1] for i in idx])
            front = NonDominatedSorting().do(F, only_non_dominated_front=True)
            parent = self.members[idx[front[self.rng.integers(len(front))]]][0]
            child = self.space.mutate(parent, self.rng)
            for _ in range(20):  # prefer an unseen child; accept a repeat after that
                if child.id not in self.seen:
                    break
                child = self.space.mutate(parent, self.rng)
            self.seen.add(child.id)
            out.append(child)
        return out

    def tell(self, evaluations: Sequence[Evaluation]) -> None:
        F = self.objective_matrix(evaluations)
        for e, f in zip(evaluations, F):
            if is_feasible(e):
                self.members.append((e.arch, f))
                if len(self.members) > self.size:
                    self.members.popleft()  # aging: the oldest dies, not the worst

    def state(self) -> dict[str, Any]:
        return {"population": len(self.members)}
