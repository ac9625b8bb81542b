"""A search's settings as one frozen, validated value.

``make_config`` builds it; the archive stores ``to_dict()`` (plain JSON), and resume, workers,
retrain, export and report read it back with ``RunConfig.from_dict``. Archives written before
``RunConfig`` existed hold the same JSON, so they load unchanged.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hwnas.core.errors import HwnasError, UsageError
from hwnas.search.objectives import Constraint, ObjectiveError, ObjectiveSet
from hwnas.spaces import SearchSpace, get_space


MAX_EVALUATIONS = 10_000_000  # beyond any search's patience; a larger count is a typo


class SearchError(HwnasError, RuntimeError):
    """A search that cannot be set up or resumed."""


class ConfigError(SearchError, UsageError):
    """A run config that asks for something impossible (a value out of range, a missing input)."""


@dataclass(frozen=True)
class RunConfig:
    """Everything that decides a search's trace (the executor does not: any gives the same trace)."""

    space: str
    input_shape: str
    objectives: ObjectiveSet  # budgets included, as its constraints
    num_classes: int = 10
    space_options: Mapping[str, Any] = field(default_factory=dict)
    strategy: str = "bo"
    strategy_options: Mapping[str, Any] = field(default_factory=dict)
    evaluations: int = 100
    seed: int = 0
    table: str | None = None  # a latency table (absolute path)
    benchmark: str | None = None  # a tabular benchmark (absolute path)
    columns: Mapping[str, str] = field(default_factory=dict)  # metric -> benchmark column
    accuracy: str | None = None  # an estimator of hwnas.evaluation.accuracy
    accuracy_options: Mapping[str, Any] = field(default_factory=dict)
    time_limit_s: float | None = None
    allow_mismatch: bool = False

    def __post_init__(self) -> None:
        from hwnas.evaluation.accuracy import estimator
        from hwnas.search.strategies import STRATEGIES

        for name in ("space_options", "strategy_options", "columns", "accuracy_options"):
            value = getattr(self, name)
            if not isinstance(value, Mapping):
                raise ConfigError(f"run config: {name} must be a table of settings, got {value!r}")
            object.__setattr__(self, name, dict(value))  # a private copy: the caller's dict may change
        for name in ("evaluations", "seed", "num_classes"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise ConfigError(f"run config: {name} must be an integer, got {value!r}")
        if not 1 <= self.evaluations <= MAX_EVALUATIONS:
            raise ConfigError(f"evaluations must be in [1, {MAX_EVALUATIONS:,}], got {self.evaluations}")
        if self.seed < 0:
            raise ConfigError(f"seed must be >= 0, got {self.seed}")
        if self.time_limit_s is not None and not (isinstance(self.time_limit_s, (int, float))
                                                  and math.isfinite(self.time_limit_s) and self.time_limit_s > 0):
            raise ConfigError(f"run config: time_limit_s must be a positive number of seconds, got {self.time_limit_s!r}")
        # an unknown name, option or value fails here, before any work
        STRATEGIES.get(self.strategy).check_options(dict(self.strategy_options))
        if self.accuracy is not None:
            check = estimator(self.accuracy).check
            if check is not None:
                check(dict(self.accuracy_options))
        if self.accuracy == "table" and not self.benchmark:
            raise ConfigError("--accuracy table needs --benchmark TABLE.csv")
        if self.accuracy == "table" and self.accuracy_options:
            raise ConfigError(f"accuracy 'table' takes no options (got {', '.join(sorted(self.accuracy_options))}); "
                              "map a column with --metric accuracy=COLUMN")

    # ----- derived values ------------------------------------------------------------------------
    def build_space(self) -> SearchSpace:
        """The run's space: the one way every stage rebuilds it from a config."""
        return get_space(self.space, input_shape=self.input_shape, num_classes=self.num_classes, **self.space_options)

    def replace(self, **changes: Any) -> RunConfig:
        return dataclasses.replace(self, **changes)

    # ----- JSON ----------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["objectives"] = self.objectives.to_dict()
        for name in ("space_options", "strategy_options", "columns", "accuracy_options"):
            out[name] = dict(out[name])
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "run config") -> RunConfig:
        """Read a stored config; an unknown or missing field is a one-line SearchError naming it."""
        if not isinstance(data, Mapping):
            raise SearchError(f"{source}: not a run config (a JSON object was expected)")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise SearchError(f"{source}: unknown run-config field(s) {', '.join(unknown)}; written by a newer hwnas?")
        missing = [n for n in ("space", "input_shape", "objectives") if n not in data]
        if missing:
            raise SearchError(f"{source}: the run config lacks {', '.join(missing)}")
        try:
            objectives = ObjectiveSet.from_dict(data["objectives"])
        except ObjectiveError as exc:
            raise SearchError(f"{source}: {exc}") from None
        return cls(objectives=objectives, **{k: v for k, v in data.items() if k != "objectives"})


def make_config(
    *, space: str, input_shape: str, num_classes: int = 10, space_options: dict[str, float] | None = None,
    objectives: ObjectiveSet, budgets: Sequence[Constraint] = (), strategy: str = "bo",
    strategy_options: dict[str, Any] | None = None, evaluations: int = 100, seed: int = 0,
    table: str | None = None, benchmark: str | None = None, columns: dict[str, str] | None = None,
    accuracy: str | None = None, accuracy_options: dict[str, Any] | None = None,
    time_limit_s: float | None = None, allow_mismatch: bool = False,
) -> RunConfig:
    """A search's complete description: stored in the archive, enough to resume. Paths are made
    absolute; ``accuracy`` defaults to ``table`` when a benchmark is given."""
    if accuracy is None and benchmark:
        accuracy = "table"
    return RunConfig(
        space=space, input_shape=input_shape, num_classes=num_classes, space_options=dict(space_options or {}),
        objectives=objectives.with_budgets(list(budgets)), strategy=strategy,
        strategy_options=dict(strategy_options or {}), evaluations=evaluations, seed=seed,
        table=str(Path(table).resolve()) if table else None,
        benchmark=str(Path(benchmark).resolve()) if benchmark else None, columns=dict(columns or {}),
        accuracy=accuracy, accuracy_options=dict(accuracy_options or {}), time_limit_s=time_limit_s,
        allow_mismatch=allow_mismatch)
