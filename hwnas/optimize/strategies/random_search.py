"""``random``: uniform sampling, the baseline every result is compared against."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from hwnas.evaluation.sources import Evaluation
from hwnas.optimize.objectives import ObjectiveSet
from hwnas.optimize.strategies.base import Strategy
from hwnas.spaces.base import Architecture, SearchSpace


@dataclass(frozen=True)
class RandomOptions:
    batch: int = 10  # candidates per ask


class RandomSearch(Strategy):
    name = "random"
    description = "uniform random sampling without repeats (the baseline)"
    Options = RandomOptions
    option_bounds = {"batch": (1, 100_000)}

    def __init__(self, space: SearchSpace, objectives: ObjectiveSet, rng: np.random.Generator,
                 options: RandomOptions | None = None) -> None:
        super().__init__(space, objectives, rng, options)
        self.batch = self.options.batch
        self.seen: set[str] = set()

    def ask(self) -> list[Architecture]:
        out: list[Architecture] = []
        for _ in range(100):
            for arch in self.space.sample(self.rng, self.batch - len(out)):
                if arch.id not in self.seen:
                    self.seen.add(arch.id)
                    out.append(arch)
            if len(out) == self.batch:
                break
        return out  # empty once (nearly) every architecture has been drawn: the loop stops

    def tell(self, evaluations: Sequence[Evaluation]) -> None:
        return None
