"""The ask/tell contract every search strategy speaks.

``ask()`` proposes a batch of architectures; ``tell(evaluations)`` returns their outcomes, in
the order asked. The loop that evaluates, filters by budget, persists and resumes is written once
(``hwnas.search.loop``) and drives any strategy. A strategy owns exactly one ``numpy.random.Generator``
(handed to it) and nothing else random, so a seeded run is a deterministic function of what it is
told: that is what lets a killed search be resumed by replaying its archive.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from hwnas.core.errors import HwnasError
from hwnas.evaluation.sources import Evaluation
from hwnas.search.objectives import ObjectiveSet
from hwnas.spaces.base import Architecture, SearchSpace

FAILED_VALUE = 1e9  # what a failed or unevaluated objective counts as when minimising


class StrategyError(HwnasError, ValueError):
    """A strategy option with a value the strategy cannot use."""


class StrategyOptionError(StrategyError, TypeError):
    """An option the strategy does not have."""


class Strategy(abc.ABC):
    name: ClassVar[str]
    description: ClassVar[str]
    # a strategy that ranks candidates by their cheap metrics before asking for them says so: the
    # loop then hands it ``cheap=`` (a function from architectures to their cheap metrics)
    needs_cheap: ClassVar[bool] = False

    def __init__(self, space: SearchSpace, objectives: ObjectiveSet, rng: np.random.Generator, **options: Any) -> None:
        if options:
            raise StrategyOptionError(f"{self.name}: unknown options {sorted(options)}")
        self.space = space
        self.objectives = objectives
        self.rng = rng

    @abc.abstractmethod
    def ask(self) -> list[Architecture]:
        """The next batch of candidates (at least one)."""

    @abc.abstractmethod
    def tell(self, evaluations: Sequence[Evaluation]) -> None:
        """Outcomes of the last batch, in the order asked."""

    # ----- helpers shared by the strategies ------------------------------------------------------
    def objective_matrix(self, evaluations: Sequence[Evaluation]) -> np.ndarray:
        """(n, n_objectives) values to minimise; failed or unevaluated objectives count as worst,
        soft-budget violations as a relative penalty."""
        rows = []
        for e in evaluations:
            row = []
            for o in self.objectives.objectives:
                v = e.metrics.get(o.name, np.nan)
                v = float(o.to_min(np.asarray(v, dtype=float))) if e.ok or o.cheap else np.nan
                row.append(FAILED_VALUE if not np.isfinite(v) else v * (1 + e.soft_violation) if v > 0
                           else v * (1 - e.soft_violation))
            rows.append(row)
        return np.asarray(rows, dtype=float).reshape(len(evaluations), len(self.objectives.objectives))

    @staticmethod
    def violations(evaluations: Sequence[Evaluation]) -> np.ndarray:
        return np.array([e.violation if e.status != "failed" else FAILED_VALUE for e in evaluations], dtype=float)

    def state(self) -> dict[str, Any]:
        """A small summary for progress displays and archives."""
        return {}
