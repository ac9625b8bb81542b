"""Objectives and constraints, and their presets (``objectives/*.toml``).

An objective names a metric, its direction (``min`` or ``max``) and whether it is *cheap*
(latency and energy from a table, params, FLOPs) or *expensive* (accuracy). A constraint is a
budget (``latency_ms<=5``), hard (a filter) or soft (a penalty). Feasibility is computed here and
nowhere else: ``Constraint.violation`` and ``ObjectiveSet.violation``/``feasible``/``broken``.
Raises ObjectiveError (a usage error) or PresetError (a bad preset file).

How it works, and why: ``docs/design.md`` (hwnas.optimize.objectives).
"""

from __future__ import annotations

import enum
import os
import math
import re
from dataclasses import dataclass, replace
from pathlib import Path
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from hwnas.core.errors import HwnasError, UsageError
from hwnas.core.presets import resolve
from hwnas.evaluation.sources import Evaluation
from hwnas.core.tomlfile import read_toml


CHEAP_BY_DEFAULT = {"latency_ms", "energy_mj", "params", "flops", "macs"}
_BUDGET_RE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(<=|>=|<|>)\s*([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(x?)\s*$")


class ObjectiveError(UsageError, ValueError):
    """A malformed objective, preset or budget: what the user asks the search for (exit 2)."""


class Direction(str, enum.Enum):
    """Which way an objective improves; compares equal to its text (``"min"``, ``"max"``)."""

    MIN = "min"
    MAX = "max"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Objective:
    name: str
    direction: Direction  # given as text or a Direction
    cheap: bool

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "direction", Direction(self.direction))
        except ValueError:
            raise ObjectiveError(f"objective {self.name!r}: direction {self.direction!r} is not 'min' or 'max'") from None

    def to_min(self, values: np.ndarray) -> np.ndarray:
        """Values as a quantity to minimise (max objectives are negated)."""
        return -values if self.direction == "max" else values


@dataclass(frozen=True)
class Constraint:
    name: str
    op: str
    bound: float
    hard: bool = True

    @property
    def text(self) -> str:
        return f"{self.name}{self.op}{self.bound:g}"

    def violation(self, values: np.ndarray) -> np.ndarray:
        """How far each value is outside the budget, relative to the bound (0 when inside)."""
        values = np.asarray(values, dtype=float)
        scale = abs(self.bound) if self.bound != 0 else 1.0
        if self.op in ("<=", "<"):
            excess = values - self.bound
            out = np.maximum(excess, 0.0) / scale
            if self.op == "<":
                out = np.where(excess >= 0, np.maximum(out, 1e-12), 0.0)
        else:
            excess = self.bound - values
            out = np.maximum(excess, 0.0) / scale
            if self.op == ">":
                out = np.where(excess >= 0, np.maximum(out, 1e-12), 0.0)
        return np.where(np.isnan(values), np.inf, out)

    def within(self, values: np.ndarray) -> np.ndarray:
        """Whether each value is within the budget."""
        return self.violation(values) == 0

    def met(self, value: float) -> bool:
        """Whether one value is within the budget."""
        return bool(self.within(np.array([value]))[0])


def parse_budget(text: str, *, hard: bool = True, where: str = "--budget",
                 reference: Mapping[str, float] | None = None) -> Constraint:
    """Parse ``latency_ms<=5`` (operators <=, <, >=, >), or ``latency_ms<=0.9x``: a factor of a
    reference model's value of the metric (``reference``: metric -> value); raises ObjectiveError."""
    m = _BUDGET_RE.match(text) if isinstance(text, str) else None
    if not m:
        raise ObjectiveError(f"{where}: budget {text!r} is not METRIC OP NUMBER, e.g. 'latency_ms<=5' "
                             "(or a factor of a reference model's value, 'latency_ms<=0.9x')")
    bound = float(m.group(3))
    if not math.isfinite(bound):
        raise ObjectiveError(f"{where}: budget {text!r} has no finite bound")
    if m.group(4):
        value = (reference or {}).get(m.group(1))
        if value is None:
            raise ObjectiveError(f"{where}: budget {text!r} is a factor of a reference model's {m.group(1)}; give "
                                 f"--reference MODEL.onnx{'' if reference is None else ' (it has no ' + m.group(1) + ')'}")
        bound *= float(value)
    return Constraint(m.group(1), m.group(2), bound, hard)


@dataclass(frozen=True)
class ObjectiveSet:
    objectives: tuple[Objective, ...]
    constraints: tuple[Constraint, ...] = ()
    source: str = "<memory>"
    # every metric's cheapness, as its source declares it (``resolved``); None until then, when
    # an objective's own flag counts and a budget on an objective's metric shares it
    cheap_metrics: frozenset[str] | None = None

    def __post_init__(self) -> None:
        names = [o.name for o in self.objectives]
        if len(names) < 1:
            raise ObjectiveError(f"{self.source}: at least one objective is needed")
        if len(set(names)) != len(names):
            raise ObjectiveError(f"{self.source}: objective names repeat: {names}")
        if not any(not o.cheap for o in self.objectives) and len(self.objectives) < 2:
            raise ObjectiveError(f"{self.source}: a single cheap objective needs no search")

    @property
    def names(self) -> list[str]:
        return [o.name for o in self.objectives]

    @property
    def metrics(self) -> list[str]:
        """Every metric the search must compute: objectives, then constrained metrics."""
        out = list(self.names)
        out += [c.name for c in self.constraints if c.name not in out]
        return out

    @property
    def costs(self) -> list[str]:
        """Metrics that are costs of a model (cheap minimised objectives, budgeted metrics): a
        latency, energy, size or FLOP count, so a value <= 0 in a table is an error."""
        out = [o.name for o in self.objectives if o.cheap and o.direction == Direction.MIN]
        out += [c.name for c in self.constraints if c.name not in out]
        return out

    @property
    def expensive(self) -> list[str]:
        return [o.name for o in self.objectives if not o.cheap]

    def is_cheap(self, metric: str) -> bool:
        """Whether ``metric`` is known before a candidate's expensive evaluation. Raises
        ObjectiveError for a metric that is no objective, before its source has said."""
        if self.cheap_metrics is not None:
            return metric in self.cheap_metrics
        for o in self.objectives:
            if o.name == metric:
                return o.cheap
        raise ObjectiveError(f"{self.source}: whether {metric!r} is cheap is for its source to say (resolve first)")

    def resolved(self, is_cheap: Callable[[str], bool]) -> ObjectiveSet:
        """The set with every metric's cheapness taken from its source (``is_cheap``). Raises
        ObjectiveError when an objective declares otherwise than its source."""
        for o in self.objectives:
            if o.cheap != is_cheap(o.name):
                said, does = ("cheap", "expensive") if o.cheap else ("expensive", "cheap")
                raise ObjectiveError(f"{self.source}: objective {o.name!r} is declared {said}, but its source "
                                     f"computes it as {does}")
        return replace(self, cheap_metrics=frozenset(m for m in self.metrics if is_cheap(m)))

    def with_budgets(self, budgets: list[Constraint]) -> ObjectiveSet:
        return ObjectiveSet(self.objectives, self.constraints + tuple(budgets), self.source)

    def F(self, metrics: dict[str, np.ndarray]) -> np.ndarray:
        """(n, n_objectives) matrix to minimise."""
        return np.stack([o.to_min(np.asarray(metrics[o.name], dtype=float)) for o in self.objectives], 1)

    def constraints_on(self, metrics: Iterable[str], *, hard: bool | None = None) -> list[Constraint]:
        """The (hard, soft or all) constraints on any of ``metrics``."""
        names = set(metrics)
        return [c for c in self.constraints if c.name in names and (hard is None or c.hard == hard)]

    def violation(self, metrics: Mapping[str, Any], *, hard: bool | None = None,
                  among: Iterable[str] | None = None) -> np.ndarray:
        """Summed relative violation per candidate of the (hard, soft or all) constraints, over
        those whose metric is in ``among`` (default: every constrained metric, which ``metrics``
        must then hold). 0 means within every one of them; a NaN value violates infinitely.
        This, with ``Constraint.violation``, is the one place feasibility is computed."""
        chosen = self.constraints_on(self.metrics if among is None else among, hard=hard)
        arrays = {c.name: np.atleast_1d(np.asarray(metrics[c.name], dtype=float)) for c in chosen}
        n = len(next(iter(arrays.values()))) if arrays else len(np.atleast_1d(next(iter(metrics.values()), [])))
        return sum((c.violation(arrays[c.name]) for c in chosen), np.zeros(n))

    def feasible(self, metrics: Mapping[str, Any], *, among: Iterable[str] | None = None) -> np.ndarray:
        """Whether each candidate meets every hard budget (over ``among``, as ``violation``)."""
        return self.violation(metrics, hard=True, among=among) <= 0

    def broken(self, values: Mapping[str, float], *, hard: bool | None = None) -> list[Constraint]:
        """The (hard, soft or all) constraints that the values at hand (one candidate) break."""
        return [c for c in self.constraints_on(values, hard=hard) if not c.met(values[c.name])]

    def to_dict(self) -> dict[str, Any]:
        return {"objectives": [{"name": o.name, "direction": o.direction.value, "cheap": o.cheap} for o in self.objectives],
                "constraints": [{"budget": c.text, "hard": c.hard} for c in self.constraints], "source": self.source}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ObjectiveSet:
        """The inverse of ``to_dict`` (what archives and front.json files hold)."""
        try:
            objs = tuple(Objective(d["name"], d["direction"], d["cheap"]) for d in data["objectives"])
            cons = tuple(parse_budget(c["budget"], hard=c["hard"], where="constraints") for c in data.get("constraints", []))
        except (KeyError, TypeError) as exc:
            raise ObjectiveError(f"objectives: a stored objective set lacks {exc}") from None
        return cls(objs, cons, data.get("source", "<config>"))


def objectives_from_specs(specs: list[str], *, cheap: set[str] | None = None, source: str = "--objective") -> ObjectiveSet:
    """``['accuracy:max', 'latency_ms:min']``; by default every metric but the first max one is cheap."""
    objs = []
    first_max_seen = False
    for spec in specs:
        name, _, direction = spec.partition(":")
        if not name or direction not in ("min", "max"):
            raise ObjectiveError(f"{source}: {spec!r} is not NAME:min or NAME:max")
        if cheap is not None:
            is_cheap = name in cheap
        else:
            is_cheap = not (direction == "max" and not first_max_seen)
            first_max_seen = first_max_seen or direction == "max"
        objs.append(Objective(name, direction, is_cheap))
    return ObjectiveSet(tuple(objs), (), source)


class PresetError(HwnasError, ValueError):
    """An objectives preset file that is missing, unreadable or malformed (exit 1: a bad file)."""


def load_objectives(path: str | Path) -> ObjectiveSet:
    """Read a preset, by path or by name (``accuracy-latency``: ``hwnas objectives`` lists them);
    raises PresetError naming the file and field."""
    try:
        return _load_objectives(resolve(path, "objectives"))
    except ObjectiveError as exc:
        raise PresetError(str(exc)) from None


def _load_objectives(p: Path) -> ObjectiveSet:
    data = read_toml(p, ObjectiveError, "objectives preset")
    unknown = set(data) - {"objective", "constraint", "description"}
    if unknown:
        raise ObjectiveError(f"{p}: field '{sorted(unknown)[0]}': unknown (expected objective, constraint)")
    raw = data.get("objective")
    if not isinstance(raw, list) or not raw:
        raise ObjectiveError(f"{p}: field 'objective': needs at least one [[objective]] table")
    objs = []
    for i, o in enumerate(raw):
        where = f"{p}: field 'objective[{i}]"
        if not isinstance(o, dict) or not isinstance(o.get("name"), str):
            raise ObjectiveError(f"{where}.name': required string")
        extra = set(o) - {"name", "direction", "cheap"}
        if extra:
            raise ObjectiveError(f"{where}.{sorted(extra)[0]}': unknown field")
        direction = o.get("direction")
        if direction not in ("min", "max"):
            raise ObjectiveError(f"{where}.direction': {direction!r} is not 'min' or 'max'")
        cheap = o.get("cheap", o["name"] in CHEAP_BY_DEFAULT)
        if not isinstance(cheap, bool):
            raise ObjectiveError(f"{where}.cheap': expected true or false, got {cheap!r}")
        objs.append(Objective(o["name"], direction, cheap))
    cons = []
    for i, c in enumerate(data.get("constraint", [])):
        where = f"{p}: field 'constraint[{i}]"
        if not isinstance(c, dict) or not isinstance(c.get("budget"), str):
            raise ObjectiveError(f"{where}.budget': required string like 'latency_ms<=5'")
        extra = set(c) - {"budget", "hard"}
        if extra:
            raise ObjectiveError(f"{where}.{sorted(extra)[0]}': unknown field")
        hard = c.get("hard", True)
        if not isinstance(hard, bool):
            raise ObjectiveError(f"{where}.hard': expected true or false, got {hard!r}")
        cons.append(parse_budget(c["budget"], hard=hard, where=f"{where}.budget'"))
    return ObjectiveSet(tuple(objs), tuple(cons), str(p))


def is_feasible(e: Evaluation) -> bool:
    """Whether an evaluation completed within every hard budget (its recorded violation is 0)."""
    return e.ok and e.violation == 0


def as_objectives(objectives: str | os.PathLike[str] | ObjectiveSet | Sequence[str]) -> ObjectiveSet:
    """An ObjectiveSet from a preset name or file, or from specs such as ``["accuracy:max", "latency_ms:min"]``."""
    if isinstance(objectives, ObjectiveSet):
        return objectives
    if isinstance(objectives, (str, os.PathLike)):
        return load_objectives(objectives)
    return objectives_from_specs(list(objectives))
