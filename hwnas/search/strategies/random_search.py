"""``random``: uniform sampling, the baseline every result is compared against."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from hwnas.evaluation.sources import Evaluation
from hwnas.search.objectives import ObjectiveSet
from hwnas.search.strategies.base import Strategy
from hwnas.spaces.base import Architecture, SearchSpace


class RandomSearch(Strategy):
    name = "random"
    description = "uniform random sampling without repeats (the baseline)"

    def __init__(self, space: SearchSpace, objectives: ObjectiveSet, rng: np.random.Generator, *, batch: int = 10, **options: Any) -> None:
        super().__init__(space, objectives, rng, **options)
        self.batch = batch
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
