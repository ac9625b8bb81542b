"""The ask/tell contract every search strategy speaks.

``ask()`` proposes a batch of architectures; ``tell(evaluations)`` returns their outcomes, in
the order asked. The loop that evaluates, filters by budget, persists and resumes is written once
(``hwnas.search.loop``) and drives any strategy. A strategy owns exactly one ``numpy.random.Generator``
(handed to it) and nothing else random, so a seeded run is a deterministic function of what it is
told: that is what lets a killed search be resumed by replaying its archive.
"""

from __future__ import annotations

import abc
import inspect
import math
import typing
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from hwnas.core.errors import UsageError
from hwnas.evaluation.sources import Evaluation
from hwnas.search.objectives import ObjectiveSet
from hwnas.spaces.base import Architecture, SearchSpace

FAILED_VALUE = 1e9  # what a failed or unevaluated objective counts as when minimising


class StrategyError(UsageError, ValueError):
    """A strategy option with a value the strategy cannot use."""


class StrategyOptionError(StrategyError, TypeError):
    """An option the strategy does not have."""


def _check_option(strategy: str, key: str, value: Any, kinds: set[Any],
                  bounds: tuple[float, float] | None) -> None:
    where = f"{strategy}: option {key}={value!r}"
    if bool in kinds:
        if value not in (0, 1, True, False):
            raise StrategyError(f"{where}: give 0 or 1")
        return
    if int in kinds and float not in kinds and (not isinstance(value, int) or isinstance(value, bool)):
        raise StrategyError(f"{where}: not an integer")
    if kinds & {int, float}:
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            raise StrategyError(f"{where}: not a finite number")
        low, high = bounds or (math.nextafter(0.0, 1.0), math.inf)
        if not low <= value <= high:
            raise StrategyError(f"{where}: must be in [{low:g}, {high:g}]" if bounds else f"{where}: must be > 0")
        return
    if str in kinds and not isinstance(value, str):
        raise StrategyError(f"{where}: not a name")


class Strategy(abc.ABC):
    name: ClassVar[str]
    description: ClassVar[str]
    # a strategy that ranks candidates by their cheap metrics before asking for them says so: the
    # loop then hands it ``cheap=`` (a function from architectures to their cheap metrics)
    needs_cheap: ClassVar[bool] = False
    # inclusive (low, high) of numeric options; an option not listed must be a finite number > 0
    option_bounds: ClassVar[dict[str, tuple[float, float]]] = {}
    # options the loop passes itself, never the user
    internal_options: ClassVar[frozenset[str]] = frozenset({"cheap"})
    # the names a text option may take, checked with the rest before any work
    option_choices: ClassVar[dict[str, tuple[str, ...]]] = {}

    def __init__(self, space: SearchSpace, objectives: ObjectiveSet, rng: np.random.Generator, **options: Any) -> None:
        if options:
            raise StrategyOptionError(f"{self.name}: unknown options {sorted(options)}")
        self.space = space
        self.objectives = objectives
        self.rng = rng

    @classmethod
    def options(cls) -> dict[str, tuple[Any, Any]]:
        """The user-settable options: name -> (type, default), read from ``__init__``'s signature."""
        hints = typing.get_type_hints(cls.__init__)
        out = {}
        for name, param in inspect.signature(cls.__init__).parameters.items():
            if param.kind is param.KEYWORD_ONLY and name not in cls.internal_options:
                out[name] = (hints.get(name, Any), param.default)
        return out

    @classmethod
    def check_options(cls, options: dict[str, Any]) -> None:
        """Refuse, in one line, an unknown option or a value of the wrong type or range, before
        any work starts (``pop_size=abc`` or ``pop_size=-3`` must not reach numpy)."""
        known = cls.options()
        for key, value in options.items():
            if key not in known:
                raise StrategyOptionError(f"{cls.name}: unknown option {key!r}; options: "
                                          + ", ".join(f"{k}={d!r}" for k, (_, d) in known.items()))
            kinds = set(typing.get_args(known[key][0])) or {known[key][0]}
            _check_option(cls.name, key, value, kinds - {type(None)}, cls.option_bounds.get(key))
            choices = cls.option_choices.get(key)
            if choices and value not in choices:
                raise StrategyError(f"{cls.name}: {key} {value!r} is not one of {', '.join(choices)}")

    @abc.abstractmethod
    def ask(self) -> list[Architecture]:
        """The next batch of candidates; an empty batch means nothing new is left to propose."""

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
