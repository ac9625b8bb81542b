"""What a search optimises, as one frozen value.

    problem = Problem.build(space="nb201", input_shape="3x32x32", objectives=objectives,
                            budgets=["latency_ms<=5"], table="latency_tables/local-cpu/nb201-3x32x32.json")
    result = minimize(problem, "bo", evaluations=100, run_dir="runs/a", seed=0)  # hwnas.search.minimize

A run's ``RunConfig`` is a problem plus how it was searched (strategy, evaluations, seed).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hwnas.core.errors import HwnasError, UsageError
from hwnas.search.objectives import Constraint, ObjectiveSet, parse_budget
from hwnas.spaces import SearchSpace, get_space

class SearchError(HwnasError, RuntimeError):
    """A search that cannot be set up or resumed."""


class ConfigError(SearchError, UsageError):
    """A search setting that asks for something impossible (a value out of range, a missing input)."""


@dataclass(frozen=True)
class Sources:
    """Where a problem's metrics come from: a device's latency table, a tabular benchmark (with a
    metric -> column map) and an accuracy estimator with its options."""

    table: str | None = None  # absolute path
    benchmark: str | None = None  # absolute path
    columns: Mapping[str, str] = field(default_factory=dict)
    accuracy: str | None = None  # a name in hwnas.evaluation.accuracy.ACCURACY
    accuracy_options: Mapping[str, Any] = field(default_factory=dict)
    time_limit_s: float | None = None  # one expensive evaluation's limit
    allow_mismatch: bool = False  # a table made on another device or runtime


@dataclass(frozen=True)
class Problem:
    """A space, the objectives (direction and cheapness) with their budgets, and the metrics'
    sources. Feasibility is the objectives' (``violation``/``feasible``): every stage asks here."""

    space: str
    input_shape: str
    objectives: ObjectiveSet  # budgets included, as its constraints
    num_classes: int = 10
    space_options: Mapping[str, Any] = field(default_factory=dict)
    sources: Sources = Sources()

    @classmethod
    def build(cls, *, space: str, objectives: ObjectiveSet, input_shape: str = "3x32x32", num_classes: int = 10,
              space_options: Mapping[str, Any] | None = None, budgets: Iterable[str | Constraint] = (),
              **sources: Any) -> Problem:
        """A problem from names and paths: budgets as text (``"latency_ms<=5"``) or parsed, paths
        made absolute, ``accuracy`` defaulting to ``table`` when a benchmark is given. ``sources``
        are the fields of :class:`Sources`; an unknown one is a ConfigError."""
        unknown = sorted(set(sources) - {f.name for f in dataclasses.fields(Sources)})
        if unknown:
            raise ConfigError(f"problem: unknown source setting {unknown[0]!r}")
        for key in ("table", "benchmark"):
            if sources.get(key):
                sources[key] = str(Path(sources[key]).resolve())
        if sources.get("accuracy") is None and sources.get("benchmark"):
            sources["accuracy"] = "table"
        parsed = [b if isinstance(b, Constraint) else parse_budget(b) for b in budgets]
        return cls(space, input_shape, objectives.with_budgets(parsed), num_classes, dict(space_options or {}),
                   Sources(**{k: (dict(v) if isinstance(v, Mapping) else v) for k, v in sources.items()}))

    def build_space(self) -> SearchSpace:
        return get_space(self.space, input_shape=self.input_shape, num_classes=self.num_classes, **self.space_options)

    def violation(self, metrics: Mapping[str, Any], *, hard: bool | None = True,
                  among: Iterable[str] | None = None) -> np.ndarray:
        """Summed relative violation of the budgets per candidate (``ObjectiveSet.violation``)."""
        return self.objectives.violation(metrics, hard=hard, among=among)

    def feasible(self, metrics: Mapping[str, Any], *, among: Iterable[str] | None = None) -> np.ndarray:
        """Whether each candidate meets every hard budget."""
        return self.objectives.feasible(metrics, among=among)
