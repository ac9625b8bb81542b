"""The ask/tell contract every search strategy speaks.

``ask()`` proposes a batch of architectures; ``tell(evaluations)`` returns their outcomes, in
the order asked. The loop that evaluates, filters by budget, persists and resumes is written once
(``hwnas.optimize.loop``) and drives any strategy. A strategy owns exactly one ``numpy.random.Generator``
(handed to it) and nothing else random, so a seeded run is a deterministic function of what it is
told: that is what lets a killed search be resumed by replaying its archive.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from hwnas.core.options import Bounds, Option, OptionError, parse_options, schema
from hwnas.evaluation.sources import Evaluation
from hwnas.optimize.objectives import ObjectiveSet
from hwnas.spaces.base import Architecture, SearchSpace

CheapFn = Callable[[Sequence[Architecture]], dict[str, np.ndarray]]
FAILED_VALUE = 1e9  # what a failed or unevaluated objective counts as when minimising


class StrategyError(OptionError):
    """A strategy option that is unknown, or whose value the strategy cannot use (exit 2)."""


@dataclasses.dataclass(frozen=True)
class NoOptions:
    """The options of a strategy that has none."""


class Strategy(abc.ABC):
    name: ClassVar[str]
    description: ClassVar[str]
    # a strategy that ranks candidates by their cheap metrics before asking for them says so: it
    # is then built with ``cheap=`` (a function from architectures to their cheap metrics)
    needs_cheap: ClassVar[bool] = False
    # the strategy's options: a frozen dataclass, with the ranges and choices of its fields beside it
    # (a numeric option not listed must be a finite number > 0)
    Options: ClassVar[type] = NoOptions
    option_bounds: ClassVar[dict[str, Bounds]] = {}
    option_choices: ClassVar[dict[str, tuple[str, ...]]] = {}

    def __init__(self, space: SearchSpace, objectives: ObjectiveSet, rng: np.random.Generator,
                 options: Any = None) -> None:
        self.space = space
        self.objectives = objectives
        self.rng = rng
        self.options = self.Options() if options is None else options

    @classmethod
    def create(cls, space: SearchSpace, objectives: ObjectiveSet, rng: np.random.Generator,
               options: Mapping[str, Any] | None = None, cheap: CheapFn | None = None) -> Strategy:
        """The strategy with its options parsed from names and values; ``cheap`` goes to a strategy
        that ranks by cheap metrics. Raises StrategyError for an option it cannot use."""
        parsed = cls.parse_options(options or {})
        return cls(space, objectives, rng, parsed, cheap=cheap) if cls.needs_cheap else cls(space, objectives, rng, parsed)

    @classmethod
    def schema(cls) -> dict[str, Option]:
        """The user-settable options: name -> type, range, choices and default."""
        return schema(cls.Options, cls.option_bounds, cls.option_choices)

    @classmethod
    def parse_options(cls, options: Mapping[str, Any]) -> Any:
        """``Options`` from names and values, refusing in one line an unknown option or a value of
        the wrong type or range before any work starts (``pop_size=-3`` must not reach numpy)."""
        return parse_options(cls.name, cls.Options, options, cls.schema(), StrategyError)

    @abc.abstractmethod
    def ask(self) -> list[Architecture]:
        """The next batch of candidates; an empty batch means nothing new is left to propose."""

    @abc.abstractmethod
    def tell(self, evaluations: Sequence[Evaluation]) -> None:
        """Outcomes of the last batch, in the order asked."""

    def observe(self, evaluations: Sequence[Evaluation]) -> None:  # noqa: B027 - optional
        """Results, at a higher fidelity, of candidates told before (a multi-fidelity search's
        promotions). A strategy that only ranks what it asked ignores them."""

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
