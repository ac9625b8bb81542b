"""Multi-fidelity search: training epochs as the fidelity, spent by asynchronous successive halving
(ASHA; Li et al. 2020) with multi-objective promotion (MO-ASHA; Schmucker et al. 2021).

Every new candidate is first trained for the lowest rung's epochs. A candidate of rung k is
promoted to rung k+1 (trained again, from scratch, for that rung's epochs) as soon as it ranks in
the top 1/eta of every result rung k holds so far; the ranking is the non-dominated rank of the
run's objectives (a candidate that breaks a budget after every feasible one), then the hypervolume
each one adds to its front. Promotions are decided on the results recorded so far, in trace order,
so whatever runs the evaluations the trace is the same. Any strategy asks the new candidates and is
told their first rung's result; a strategy that learns from every rung (``bo``) also observes the
promotions' results.

How it works, and why: ``docs/design.md`` (hwnas.optimize.fidelity).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from hwnas.core.options import Option, OptionError, check_options, parse_options, schema
from hwnas.core.pareto import hypervolume, non_dominated
from hwnas.evaluation.sources import Evaluation
from hwnas.optimize.objectives import ObjectiveSet
from hwnas.spaces.architecture import Architecture

__all__ = ["SCHEDULERS", "ASHAOptions", "SuccessiveHalving", "latest_per_architecture", "mo_order", "parse_scheduler",
           "rung_counts"]

SCHEDULERS = ("none", "asha")


@dataclass(frozen=True)
class ASHAOptions:
    """Rungs at ``min_epochs``, ``min_epochs * eta``, ... up to ``max_epochs`` (always the last). The
    defaults (1, 2 and 4 epochs) are the rungs ``hwnas bench-real`` measured on Fashion-MNIST."""

    min_epochs: int = 1
    max_epochs: int = 4
    eta: int = 2  # the reduction factor: the top 1/eta of a rung is promoted

    def __post_init__(self) -> None:
        check_options("asha", {"min_epochs": self.min_epochs, "max_epochs": self.max_epochs, "eta": self.eta},
                      ASHA_OPTIONS)
        if self.max_epochs < self.min_epochs:
            raise OptionError(f"asha: max_epochs {self.max_epochs} is below min_epochs {self.min_epochs}")

    def rungs(self) -> tuple[int, ...]:
        """The epochs of each rung, lowest first."""
        out = [self.min_epochs]
        while out[-1] * self.eta < self.max_epochs:
            out.append(out[-1] * self.eta)
        if out[-1] != self.max_epochs:
            out.append(self.max_epochs)
        return tuple(out)


ASHA_OPTIONS: dict[str, Option] = schema(ASHAOptions, {"min_epochs": (1, 10_000), "max_epochs": (1, 10_000),
                                                       "eta": (2, 100)})


def parse_scheduler(name: str | None, options: dict[str, object]) -> ASHAOptions | None:
    """The scheduler's options (None: every candidate at the estimator's own fidelity); raises
    OptionError for an unknown scheduler or option."""
    if name in (None, "none"):
        if options:
            raise OptionError("--scheduler-opt needs --scheduler asha")
        return None
    if name != "asha":
        raise OptionError(f"unknown scheduler {name!r} (choose from {', '.join(SCHEDULERS)})")
    return parse_options("asha", ASHAOptions, options, ASHA_OPTIONS)


def mo_order(evaluations: Sequence[Evaluation], objectives: ObjectiveSet) -> list[int]:
    """Indices of ``evaluations`` (complete ones) from best to worst: those within the hard budgets
    by non-dominated rank, each rank by the hypervolume its members add (largest first); then those
    that break a budget, least violation first. Ties keep the given order."""
    n = len(evaluations)
    if n == 0:
        return []
    F = objectives.F({m: np.array([e.metrics[m] for e in evaluations], dtype=float) for m in objectives.names})
    violation = np.array([e.violation for e in evaluations], dtype=float)
    ok = np.flatnonzero(violation <= 0)
    order: list[int] = []
    if len(ok):
        lo, hi = F[ok].min(0), F[ok].max(0)
        scaled = (F - lo) / np.where(hi > lo, hi - lo, 1.0)
        left = list(ok)
        while left:
            front = [left[i] for i in non_dominated(scaled[left])]
            order += sorted(front, key=lambda i: (-_contribution(scaled, front, i), i))
            left = [i for i in left if i not in set(front)]
    bad = np.flatnonzero(violation > 0)
    order += sorted(bad.tolist(), key=lambda i: (violation[i], i))
    return order


def _contribution(scaled: np.ndarray, front: list[int], i: int) -> float:
    """The hypervolume (reference point 1.1 in each scaled objective) that member ``i`` adds."""
    ref = np.full(scaled.shape[1], 1.1)
    others = [j for j in front if j != i]
    return hypervolume(scaled[front], ref) - (hypervolume(scaled[others], ref) if others else 0.0)


@dataclass
class SuccessiveHalving:
    """The rungs' results and which candidates have been promoted from each."""

    objectives: ObjectiveSet
    options: ASHAOptions
    levels: tuple[int, ...] = ()
    results: list[dict[str, Evaluation]] = field(default_factory=list)  # per rung: arch id -> result
    promoted: list[set[str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.levels = self.options.rungs()
        self.results = [{} for _ in self.levels]
        self.promoted = [set() for _ in self.levels]

    @property
    def first(self) -> int:
        return self.levels[0]

    def rung_of(self, epochs: float | None) -> int | None:
        return self.levels.index(int(epochs)) if epochs is not None and int(epochs) in self.levels else None

    def add(self, e: Evaluation) -> None:
        """Take a recorded result into its rung (a failed one is never promoted)."""
        k = self.rung_of(e.fidelity)
        if k is not None and e.ok:
            self.results[k].setdefault(e.arch.id, e)

    def promotions(self) -> list[tuple[Architecture, int]]:
        """Every candidate promotable now (the top 1/eta of its rung, not promoted before), highest
        rung first, each with the epochs of the rung it goes to; marks them promoted."""
        out: list[tuple[Architecture, int]] = []
        for k in range(len(self.levels) - 2, -1, -1):
            done = list(self.results[k].values())
            top = math.floor(len(done) / self.options.eta)
            if top == 0:
                continue
            for i in mo_order(done, self.objectives)[:top]:
                e = done[i]
                if e.arch.id not in self.promoted[k] and e.violation <= 0:
                    self.promoted[k].add(e.arch.id)
                    out.append((e.arch, self.levels[k + 1]))
        return out

    def counts(self) -> dict[int, int]:
        """Results per rung (epochs -> count)."""
        return {level: len(r) for level, r in zip(self.levels, self.results)}


def rung_counts(scheduler: SuccessiveHalving) -> str:
    """``1 ep: 27  3 ep: 9  9 ep: 3``: the results each rung holds."""
    return "  ".join(f"{epochs} ep: {n}" for epochs, n in scheduler.counts().items())


def latest_per_architecture(trace: Sequence[Evaluation]) -> list[Evaluation]:
    """Each architecture's complete evaluation at its highest fidelity (what a front is made of),
    in order of first appearance; a trace without fidelities is returned as it is."""
    if all(e.fidelity is None for e in trace):
        return list(trace)
    best: dict[str, Evaluation] = {}
    for e in trace:  # a complete result beats a failed one, then the higher fidelity wins
        have = best.get(e.arch.id)
        if have is None or (e.ok, e.fidelity or 0) >= (have.ok, have.fidelity or 0):
            best[e.arch.id] = e
    return list(best.values())
