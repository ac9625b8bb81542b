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
from typing import Any

from hwnas.core.options import OptionError, Scalar
from hwnas.optimize.fidelity import ASHAOptions, parse_scheduler
from hwnas.optimize.objectives import Constraint, ObjectiveError, ObjectiveSet
from hwnas.optimize.problem import ConfigError, Problem, SearchError, Sources
from hwnas.spaces import SearchSpace


MAX_EVALUATIONS = 10_000_000  # beyond any search's patience; a larger count is a typo
TIMED_EVALUATIONS = 100_000  # the evaluation cap of a search given only a time budget


@dataclass(frozen=True)
class Termination:
    """When a search stops: after ``evaluations`` expensive evaluations or, with ``seconds``, once
    the next evaluation would end past that much wall time (the search's own, over every resume),
    whichever comes first. ``Termination(seconds=1800)`` alone caps evaluations at 100,000."""

    evaluations: int | None = None
    seconds: float | None = None

    @property
    def count(self) -> int:
        return self.evaluations or (TIMED_EVALUATIONS if self.seconds else 100)


@dataclass(frozen=True)
class RunConfig:
    """Everything that decides a search's trace (the executor does not: any gives the same trace)."""

    space: str
    input_shape: str
    objectives: ObjectiveSet  # budgets included, as its constraints
    num_classes: int = 10
    space_options: Mapping[str, float] = field(default_factory=dict)
    strategy: str = "bo"
    strategy_options: Mapping[str, Scalar] = field(default_factory=dict)
    evaluations: int = 100
    seed: int = 0
    table: str | None = None  # a latency table (absolute path)
    benchmark: str | None = None  # a tabular benchmark (absolute path)
    columns: Mapping[str, str] = field(default_factory=dict)  # metric -> benchmark column
    accuracy: str | None = None  # an estimator of hwnas.evaluation.accuracy
    accuracy_options: Mapping[str, Scalar] = field(default_factory=dict)
    time_limit_s: float | None = None
    allow_mismatch: bool = False
    time_budget_s: float | None = None  # the whole search's wall time (None: evaluations alone)
    fidelity: ASHAOptions | None = None  # multi-fidelity: the rungs of successive halving (epochs)
    reference: Mapping[str, Any] | None = None  # the user's model the budgets were made from, as measured

    def __post_init__(self) -> None:
        from hwnas.evaluation.accuracy import estimator
        from hwnas.optimize.strategies import STRATEGIES

        for name in ("space_options", "strategy_options", "columns", "accuracy_options"):
            value = getattr(self, name)
            if not isinstance(value, Mapping):
                raise ConfigError(f"run config: {name} must be a table of settings, got {value!r}")
            object.__setattr__(self, name, dict(value))  # a private copy: the caller's dict may change
        if isinstance(self.fidelity, Mapping):  # as stored in an archive
            try:
                object.__setattr__(self, "fidelity", parse_scheduler("asha", dict(self.fidelity)))
            except OptionError as exc:
                raise ConfigError(f"run config: fidelity: {exc}") from None
        elif self.fidelity is not None and not isinstance(self.fidelity, ASHAOptions):
            raise ConfigError(f"run config: fidelity must be the options of successive halving, got {self.fidelity!r}")
        if self.fidelity is not None and not self.accuracy:
            raise ConfigError("a multi-fidelity search (--scheduler asha) needs an accuracy estimator to train "
                              "(--accuracy train, or a benchmark with learning-curve columns)")
        for name in ("evaluations", "seed", "num_classes"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise ConfigError(f"run config: {name} must be an integer, got {value!r}")
        if not 1 <= self.evaluations <= MAX_EVALUATIONS:
            raise ConfigError(f"evaluations must be in [1, {MAX_EVALUATIONS:,}], got {self.evaluations}")
        if self.seed < 0:
            raise ConfigError(f"seed must be >= 0, got {self.seed}")
        for name in ("time_limit_s", "time_budget_s"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, (int, float)) and not isinstance(value, bool)
                                          and math.isfinite(value) and value > 0):
                raise ConfigError(f"run config: {name} must be a positive number of seconds, got {value!r}")
        # an unknown name, option or value fails here, before any work
        STRATEGIES.get(self.strategy).parse_options(self.strategy_options)
        if self.accuracy is not None:
            check = estimator(self.accuracy).check
            if check is not None:
                check(dict(self.accuracy_options))
        if self.accuracy == "table" and not self.benchmark:
            raise ConfigError("--accuracy table needs --benchmark TABLE.csv")
        if self.accuracy == "table" and self.accuracy_options:
            raise ConfigError(f"accuracy 'table' takes no options (got {', '.join(sorted(self.accuracy_options))}); "
                              "map a column with --metric accuracy=COLUMN")

    # ----- the problem and how it is searched ----------------------------------------------------
    @classmethod
    def of(cls, problem: Problem, *, strategy: str = "bo", strategy_options: Mapping[str, Scalar] | None = None,
           evaluations: int | Termination = 100, seed: int = 0) -> RunConfig:
        """The run of ``problem`` with a strategy, an evaluation count (or a ``Termination``) and a seed."""
        src = problem.sources
        stop = evaluations if isinstance(evaluations, Termination) else Termination(evaluations)
        evaluations = stop.count
        return cls(space=problem.space, input_shape=problem.input_shape, objectives=problem.objectives,
                   num_classes=problem.num_classes, space_options=dict(problem.space_options), strategy=strategy,
                   strategy_options=dict(strategy_options or {}), evaluations=evaluations, seed=seed, table=src.table,
                   benchmark=src.benchmark, columns=dict(src.columns), accuracy=src.accuracy,
                   accuracy_options=dict(src.accuracy_options), time_limit_s=src.time_limit_s,
                   allow_mismatch=src.allow_mismatch, time_budget_s=stop.seconds, fidelity=src.fidelity,
                   reference=problem.reference)

    @property
    def problem(self) -> Problem:
        """What the run optimises (everything but the strategy, evaluation count and seed)."""
        return Problem(self.space, self.input_shape, self.objectives, self.num_classes, dict(self.space_options),
                       Sources(self.table, self.benchmark, dict(self.columns), self.accuracy, dict(self.accuracy_options),
                               self.time_limit_s, self.allow_mismatch, self.fidelity), self.reference)

    def build_space(self) -> SearchSpace:
        """The run's space: the one way every stage rebuilds it from a config."""
        return self.problem.build_space()

    def replace(self, **changes: Any) -> RunConfig:
        return dataclasses.replace(self, **changes)

    # ----- JSON ----------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["objectives"] = self.objectives.to_dict()
        for name in ("space_options", "strategy_options", "columns", "accuracy_options"):
            out[name] = dict(out[name])
        out["fidelity"] = dataclasses.asdict(self.fidelity) if self.fidelity else None
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


def make_config(*, space: str, objectives: ObjectiveSet, budgets: Sequence[Constraint | str] = (), strategy: str = "bo",
                strategy_options: Mapping[str, Scalar] | None = None, evaluations: int = 100, seed: int = 0,
                **problem: Any) -> RunConfig:
    """A search's complete description, stored in the archive and enough to resume, from flat
    keywords: ``input_shape``, ``num_classes`` and ``space_options`` go to :meth:`Problem.build`,
    the rest to :class:`Sources` (an unknown one is a ConfigError)."""
    shape = {k: problem.pop(k) for k in ("input_shape", "num_classes", "space_options") if k in problem}
    stop = Termination(evaluations, problem.pop("time_budget_s", None))
    unknown = sorted(set(problem) - {f.name for f in dataclasses.fields(Sources)})
    if unknown:
        raise ConfigError(f"problem: unknown setting {unknown[0]!r}")
    built = Problem.build(space, objectives, budgets=budgets, sources=Sources(**problem), **shape)
    return RunConfig.of(built, strategy=strategy, strategy_options=strategy_options, evaluations=stop, seed=seed)
