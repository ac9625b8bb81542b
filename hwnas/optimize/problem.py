"""What a search optimises, as one frozen value.

    problem = Problem.build(space="nb201", input_shape="3x32x32", objectives=objectives,
                            budgets=["latency_ms<=5"], table="latency_tables/local-cpu/nb201-3x32x32.json")
    result = minimize(problem, "bo", evaluations=100, run_dir="runs/a", seed=0)  # hwnas.optimize.minimize

A run's ``RunConfig`` is a problem plus how it was searched (strategy, evaluations, seed).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hwnas.core.errors import HwnasError, UsageError
from hwnas.core.options import Scalar
from hwnas.optimize.fidelity import ASHAOptions
from hwnas.optimize.objectives import Constraint, ObjectiveSet, as_objectives, parse_budget
from hwnas.spaces import SearchSpace, get_space

class SearchError(HwnasError, RuntimeError):
    """A search that cannot be set up or resumed."""


class ConfigError(SearchError, UsageError):
    """A search setting that asks for something impossible (a value out of range, a missing input)."""


@dataclass(frozen=True)
class Sources:
    """Where a problem's metrics come from: a device's latency table, a tabular benchmark (with a
    metric -> column map) and an accuracy estimator with its options. Paths are made absolute;
    ``accuracy`` is ``"table"`` (the benchmark's column) when a benchmark is given without one.
    With ``fidelity`` (``hwnas.optimize.fidelity.ASHAOptions``), the expensive metrics are measured
    after a number of training epochs that successive halving chooses per candidate."""

    table: str | os.PathLike[str] | None = None
    benchmark: str | os.PathLike[str] | None = None
    columns: Mapping[str, str] = field(default_factory=dict)
    accuracy: str | None = None  # a name in hwnas.evaluation.accuracy.ACCURACY
    accuracy_options: Mapping[str, Scalar] = field(default_factory=dict)
    time_limit_s: float | None = None  # one expensive evaluation's limit
    allow_mismatch: bool = False  # a table made on another device or runtime
    fidelity: ASHAOptions | None = None  # training epochs as a fidelity, spent by successive halving

    def __post_init__(self) -> None:
        for key in ("table", "benchmark"):
            value = getattr(self, key)
            if value:  # absolute: a run is resumed and its workers started from other folders
                path = os.fspath(value)
                object.__setattr__(self, key, path if os.path.isabs(path) else str(Path(path).resolve()))
        for key in ("columns", "accuracy_options"):
            value = getattr(self, key)
            if not isinstance(value, Mapping):
                raise ConfigError(f"problem: {key} must be a table of settings, got {value!r}")
            object.__setattr__(self, key, dict(value))  # a private copy: the caller's dict may change
        if self.accuracy is None and self.benchmark:
            object.__setattr__(self, "accuracy", "table")
        if self.fidelity is not None and not isinstance(self.fidelity, ASHAOptions):
            raise ConfigError(f"problem: fidelity must be an ASHAOptions, got {self.fidelity!r}")


@dataclass(frozen=True)
class Problem:
    """A space, the objectives (direction and cheapness) with their budgets, and the metrics'
    sources. Feasibility is the objectives' (``violation``/``feasible``): every stage asks here."""

    space: str
    input_shape: str
    objectives: ObjectiveSet  # budgets included, as its constraints
    num_classes: int = 10
    space_options: Mapping[str, float] = field(default_factory=dict)
    sources: Sources = Sources()
    reference: Mapping[str, Any] | None = None  # the user's model the budgets were made from, as measured

    @classmethod
    def build(cls, space: str, objectives: str | os.PathLike[str] | ObjectiveSet | Sequence[str] = "accuracy-latency",
              *, input_shape: str = "3x32x32", num_classes: int = 10, space_options: Mapping[str, float] | None = None,
              budgets: Iterable[str | Constraint] = (), sources: Sources | None = None,
              reference: Mapping[str, Any] | None = None) -> Problem:
        """A problem from names: ``objectives`` a preset name or file (``hwnas objectives`` lists
        them), specs such as ``["accuracy:max", "latency_ms:min"]`` or an ObjectiveSet; ``budgets``
        as text (``"latency_ms<=5"``) or parsed. With ``reference`` (a measured model's record,
        ``hwnas.latency.onnx_models.Reference.to_dict()``), a budget may be a factor of its value
        (``"latency_ms<=0.9x"``), and without a latency budget it is ``latency_ms<=1x`` (and
        ``peak_memory_kb<=1x`` when that is an objective). Raises ConfigError (ObjectiveError) for a
        bad one."""
        values = dict(reference["values"]) if reference else None
        parsed = [b if isinstance(b, Constraint) else parse_budget(b, reference=values) for b in budgets]
        chosen = as_objectives(objectives)
        implied = ["latency_ms"] + (["peak_memory_kb"] if "peak_memory_kb" in chosen.metrics else [])
        for metric in implied:  # the reference's own value, unless a budget on it was given
            if values and metric in values and not any(c.name == metric for c in parsed):
                parsed.append(parse_budget(f"{metric}<=1x", reference=values))
        return cls(space, input_shape, chosen.with_budgets(parsed), num_classes,
                   dict(space_options or {}), sources or Sources(), dict(reference) if reference else None)

    def build_space(self) -> SearchSpace:
        return get_space(self.space, input_shape=self.input_shape, num_classes=self.num_classes, **self.space_options)

    def violation(self, metrics: Mapping[str, Any], *, hard: bool | None = True,
                  among: Iterable[str] | None = None) -> np.ndarray:
        """Summed relative violation of the budgets per candidate (``ObjectiveSet.violation``)."""
        return self.objectives.violation(metrics, hard=hard, among=among)

    def feasible(self, metrics: Mapping[str, Any], *, among: Iterable[str] | None = None) -> np.ndarray:
        """Whether each candidate meets every hard budget."""
        return self.objectives.feasible(metrics, among=among)
