"""Choosing the models to ship from a front: the most accurate within every budget, the fastest of
those whose accuracy is within one standard error of the most accurate, the front's knee, or members
spread between its extremes; and the one model to recommend, with the reason in the user's terms.
Works on front.json's rows (``front_members``), so a finished, running or killed search answers
alike."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hwnas.core.errors import UsageError
from hwnas.core.pareto import spread
from hwnas.optimize.objectives import Direction, ObjectiveSet

SELECTIONS = ("accuracy", "accuracy-1se", "knee", "extremes")
Member = Mapping[str, Any]


def default_selection(objectives: ObjectiveSet) -> str:
    """``accuracy`` when the run has a hard budget (the user said what fits), else ``extremes``."""
    return "accuracy" if any(c.hard for c in objectives.constraints) else "extremes"


def quality_metric(objectives: ObjectiveSet) -> str:
    """The objective a user ranks models by: the first expensive maximised one (accuracy), else the
    first maximised one, else the first objective."""
    maxed = [o for o in objectives.objectives if o.direction == Direction.MAX]
    expensive = [o for o in maxed if not o.cheap]
    return (expensive or maxed or list(objectives.objectives))[0].name


def speed_metric(objectives: ObjectiveSet) -> str | None:
    """The cheap objective a user would rather spend less of at equal accuracy: the first minimised
    cheap objective with a hard budget (latency under a latency budget), else the first minimised
    cheap objective; None when there is none."""
    cheap = [o for o in objectives.objectives if o.cheap and o.direction == Direction.MIN]
    budgeted = {c.name for c in objectives.constraints if c.hard}
    ranked = [o for o in cheap if o.name in budgeted] + cheap
    return ranked[0].name if ranked else None


def standard_error(accuracy: float, n: int | None) -> float:
    """One binomial standard error of an accuracy measured on ``n`` images, on the accuracy's own
    scale (percent when it is above 1); 0 when ``n`` is unknown."""
    if not n or not math.isfinite(accuracy):
        return 0.0
    scale = 100.0 if accuracy > 1.0 else 1.0
    p = min(max(accuracy / scale, 0.0), 1.0)
    return scale * math.sqrt(p * (1 - p) / n)


def accuracy_images(sources: Sequence[Mapping[str, Any]] | None) -> int | None:
    """How many validation images a run's accuracy was measured on, from its sources' descriptions
    (the archive's ``sources`` meta: ``split_sizes`` is train, validation, test); None if unknown."""
    for source in sources or ():
        sizes = source.get("split_sizes") if isinstance(source, Mapping) else None
        if isinstance(sizes, (list, tuple)) and len(sizes) == 3 and int(sizes[1]) > 0:
            return int(sizes[1])
    return None


def select(members: Sequence[Member], objectives: ObjectiveSet, how: str, limit: int | None = None, *,
           accuracy_n: int | None = None) -> list[Member]:
    """``limit`` members of a front (all when None) in the order a user would take them:

    - ``accuracy``: the feasible members, most accurate first (``quality_metric``);
    - ``accuracy-1se``: the same, except that the members whose accuracy is within one standard
      error (``standard_error`` over ``accuracy_n`` images) of the most accurate one come first,
      fastest first (``speed_metric``): a difference the validation split cannot tell apart is not
      worth the latency (the one-standard-error rule; with ``accuracy_n`` None, ``accuracy``);
    - ``knee``: the feasible members by distance from the front's knee, the knee first;
    - ``extremes``: members spread evenly from one end of the front to the other (front order).

    A front with no feasible member (least violating) is ranked as if every member were feasible.
    Raises UsageError for an unknown selection.
    """
    if how not in SELECTIONS:
        raise UsageError(f"--select {how!r}: not one of {', '.join(SELECTIONS)}")
    if how == "extremes":
        return [members[i] for i in spread(len(members), limit)]
    pool = [m for m in members if m.get("feasible")] or list(members)
    if how in ("accuracy", "accuracy-1se"):
        key = quality_metric(objectives)
        ranked = sorted(pool, key=lambda m: -_value(m, key))
        speed = speed_metric(objectives)
        if how == "accuracy-1se" and ranked and speed is not None:
            floor = _value(ranked[0], key) - standard_error(_value(ranked[0], key), accuracy_n)
            tied = [m for m in ranked if _value(m, key) >= floor]
            tied.sort(key=lambda m: _value(m, speed))  # a minimised objective: the least first
            ranked = tied + [m for m in ranked if _value(m, key) < floor]
    else:
        order = np.argsort(knee_distance(pool, objectives), kind="stable")
        ranked = [pool[i] for i in order]
    return ranked if limit is None else ranked[:limit]


def knee_distance(members: Sequence[Member], objectives: ObjectiveSet) -> np.ndarray:
    """How far each member is from the front's knee (0 at the knee). Objectives are scaled to
    [0, 1] over the members; with two objectives the knee is the member farthest below the chord
    between the two extremes (the largest gain of one objective for the other), with more it is the
    member closest to the ideal point."""
    F = np.array([[float(o.to_min(np.asarray(_value(m, o.name)))) for o in objectives.objectives] for m in members])
    if len(F) == 0:
        return np.zeros(0)
    low, high = F.min(0), F.max(0)
    Z = (F - low) / np.where(high > low, high - low, 1.0)
    if Z.shape[1] != 2 or len(Z) < 3:
        return np.linalg.norm(Z, axis=1)
    a, b = Z[np.argmin(Z[:, 0])], Z[np.argmin(Z[:, 1])]
    chord = b - a
    if not np.any(chord):
        return np.linalg.norm(Z, axis=1)
    normal = np.array([-chord[1], chord[0]]) / np.linalg.norm(chord)
    if normal @ (-a) < 0:  # point the normal towards the ideal point (0, 0)
        normal = -normal
    below = (Z - a) @ normal  # positive on the ideal side of the chord
    return below.max() - below


@dataclass(frozen=True)
class Recommendation:
    """The one model to ship and why, in words a user reads."""

    member: Member
    why: str

    @property
    def arch(self) -> str:
        return str(self.member["arch"])


def recommend(members: Sequence[Member], objectives: ObjectiveSet, *, accuracy_n: int | None = None,
              how: str | None = None) -> Recommendation | None:
    """The member to ship and why: by ``how`` (a ``select`` choice; None: ``accuracy`` when there is
    a hard budget, else ``knee``); each budget is set against the member's own value of its metric.
    ``accuracy_n``: the number of images its accuracy was measured on, for a 95% interval and the
    standard error of ``accuracy-1se``. None for an empty front; UsageError for an unknown ``how``."""
    if not members:
        return None
    hard = [c for c in objectives.constraints if c.hard]
    how = how or ("accuracy" if hard else "knee")
    best = select(members, objectives, how, 1, accuracy_n=accuracy_n)[0]
    acc = quality_metric(objectives)
    words = [f"{acc} {_value(best, acc):.2f}{'%' if 'acc' in acc else ''}{_interval(best, acc, accuracy_n)}"]
    for c in hard:
        value = _value(best, c.name)
        if math.isfinite(value) and c.bound:
            margin = (c.bound - value) / abs(c.bound) if c.op in ("<=", "<") else (value - c.bound) / abs(c.bound)
            side = f"{margin:.1%} to spare" if margin >= 0 else f"{-margin:.1%} over"
            words.append(f"{_with_unit(c.name, value)} against the budget {c.text} ({side})")
    return Recommendation(best, f"{_reason(members, objectives, how, best, accuracy_n)}: " + "; ".join(words))


def _reason(members: Sequence[Member], objectives: ObjectiveSet, how: str, best: Member, n: int | None) -> str:
    feasible = sum(1 for m in members if m.get("feasible"))
    if how == "knee":
        return "the front's knee: beyond it, each gain in one objective costs more of the other"
    if how == "extremes":
        return "the first of the front's members spread from one end to the other"
    if not best.get("feasible"):
        return "no member meets every budget; this is the most accurate of them"
    acc, speed = quality_metric(objectives), speed_metric(objectives)
    top = max(_value(m, acc) for m in members if m.get("feasible"))
    se = standard_error(top, n)
    if how == "accuracy-1se" and speed is not None and se > 0:
        return (f"the least {speed} of the {feasible} front members within every budget whose {acc} is within one "
                f"standard error ({se:.2f} over {n:,} images) of the most accurate ({top:.2f})")
    return f"the most accurate of the {feasible} front members within every budget"


def _with_unit(metric: str, value: float) -> str:
    """``latency 1.95 ms`` for ``latency_ms``: a metric's value in the unit its name ends with."""
    for suffix, unit in (("_ms", "ms"), ("_mj", "mJ"), ("_kb", "kB")):
        if metric.endswith(suffix):
            return f"{metric[:-len(suffix)]} {value:.4g} {unit}"
    return f"{metric} {value:.4g}"


def _value(member: Member, key: str) -> float:
    value = member.get(key)
    return float(value) if isinstance(value, (int, float)) else float("nan")


def _interval(member: Member, metric: str, n: int | None) -> str:
    """`` (95% interval a-b, n images)`` for an accuracy in percent measured on ``n`` images (Wilson)."""
    p = _value(member, metric) / 100.0
    if not n or not (0.0 <= p <= 1.0):
        return ""
    z = 1.959964
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return f" (95% interval {100 * (centre - half):.1f}-{100 * (centre + half):.1f}, {n:,} images)"
