"""The ask/tell loop, written once for every strategy: ask -> cheap metrics -> budget filter ->
expensive evaluation -> tell, until the evaluations (or the time budget) are spent.

A candidate that breaks a hard budget on its cheap metrics is settled ``infeasible`` and never
trained (nor counted); a repeated architecture gets its earlier result; a candidate the archive
holds is answered from it (resume). Whatever runs the evaluations, the trace is the same.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hwnas.evaluation.sources import Evaluation, Status
from hwnas.optimize.evaluator import CandidateEvaluator, Result
from hwnas.optimize.fidelity import SuccessiveHalving
from hwnas.optimize.objectives import ObjectiveSet
from hwnas.optimize.persist import completed
from hwnas.spaces.architecture import Architecture

Job = tuple[Architecture, float | None]  # a candidate and the epochs to train it for (None: the source's own)

__all__ = ["EVALUATIONS", "TIME_BUDGET", "LoopHooks", "run_strategy"]

MAX_CANDIDATES_PER_EVALUATION = 50  # stop asking when a budget filters out nearly everything
# stop when this many batches in a row hold nothing unseen: the strategy cannot find a new candidate
# (a budget that leaves a handful of architectures, all seen) and asking on only repeats them
MAX_STALE_BATCHES = 20


class _Kind(enum.Enum):
    """What the loop does with one asked candidate, decided before anything in its batch runs."""

    REPEAT = "an architecture this run already settled: its result again, not recorded again"
    TWIN = "a second copy within the batch: the first copy's result"
    REPLAYED = "answered by the archive (resume)"
    SETTLED = "settled without evaluation (infeasible): recorded"
    EVALUATE = "sent to the expensive evaluation"


@dataclass
class _Step:
    kind: _Kind
    evaluation: Evaluation | None = None  # REPEAT, REPLAYED, SETTLED
    index: int = 0  # TWIN: the step it copies; EVALUATE: its place in the batch's work
    cheap: dict[str, float] = field(default_factory=dict)  # EVALUATE
    arch: Architecture | None = None  # EVALUATE
    epochs: float | None = None  # EVALUATE in a multi-fidelity search: its rung's epochs


@dataclass
class _LoopState:
    evaluations: int  # the expensive evaluations to spend
    known: dict[str, Evaluation] = field(default_factory=dict)
    trace: list[Evaluation] = field(default_factory=list)
    used: int = 0
    asked: int = 0
    stale: int = 0  # batches in a row with nothing unseen


def _plan(batch: list[Architecture], cheap: dict[str, np.ndarray], state: _LoopState, objectives: ObjectiveSet,
          hooks: LoopHooks, epochs: float | None) -> list[_Step]:
    """Decide, in order, what each candidate of a batch needs; stops where the evaluations would run out."""
    lookup = hooks.lookup
    plan: list[_Step] = []
    first: dict[str, int] = {}
    work = 0
    planned_used = state.used
    for i, arch in enumerate(batch):
        if planned_used >= state.evaluations:
            break
        if arch.id in state.known:
            plan.append(_Step(_Kind.REPEAT, state.known[arch.id]))
        elif arch.id in first:
            plan.append(_Step(_Kind.TWIN, index=first[arch.id]))
        else:
            first[arch.id] = len(plan)
            e = lookup(arch, epochs) if lookup else None
            if e is not None:
                plan.append(_Step(_Kind.REPLAYED, e))
                planned_used += int(e.expensive)
                continue
            values = {m: float(v[i]) for m, v in cheap.items()}
            e = _infeasible(arch, values, objectives)
            if e is not None:
                plan.append(_Step(_Kind.SETTLED, e))
                continue
            plan.append(_Step(_Kind.EVALUATE, index=work, cheap=values, arch=arch, epochs=epochs))
            work += 1
            planned_used += 1
    return plan


def _plan_promotions(promotions: list[tuple[Architecture, int]], scheduler: SuccessiveHalving, state: _LoopState,
                     hooks: LoopHooks) -> list[_Step]:
    """The steps of a batch of promotions: each trained again for its new rung's epochs (or
    answered by the archive), its cheap metrics those of its earlier rung."""
    plan: list[_Step] = []
    work = 0
    for arch, epochs in promotions[:max(0, state.evaluations - state.used)]:
        e = hooks.lookup(arch, epochs) if hooks.lookup else None
        if e is not None:
            plan.append(_Step(_Kind.REPLAYED, e))
            continue
        below = scheduler.results[scheduler.levels.index(epochs) - 1][arch.id]
        cheap = {m: v for m, v in below.metrics.items() if scheduler.objectives.is_cheap(m)}
        plan.append(_Step(_Kind.EVALUATE, index=work, cheap=cheap, arch=arch, epochs=epochs))
        work += 1
    return plan


@dataclass(frozen=True)
class LoopHooks:
    """What the loop is handed besides the strategy. ``lookup`` may answer a candidate from
    elsewhere (the archive, on resume) before it is evaluated; ``record`` sees every new evaluation,
    in order; ``on_progress`` the trace after each expensive one. ``execute`` runs a list of
    expensive evaluations (architecture, epochs or None; default: one after another, here) and
    returns (metrics, failure reason, seconds) per candidate, in order; ``parallel`` is how many it
    runs at once. ``seconds_left`` gives what is left of a time budget (None: no time budget)."""

    lookup: Callable[[Architecture, float | None], Evaluation | None] | None = None
    record: Callable[[Evaluation], None] | None = None
    on_progress: Callable[[list[Evaluation], int], None] | None = None
    execute: Callable[[list[Job]], list[Result]] | None = None
    parallel: int = 1
    seconds_left: Callable[[], float] | None = None


EVALUATIONS, TIME_BUDGET = "evaluations", "time budget"  # a search that stopped as planned


def run_strategy(strategy: Any, evaluator: CandidateEvaluator, objectives: ObjectiveSet, evaluations: int,
                 hooks: LoopHooks = LoopHooks(), scheduler: SuccessiveHalving | None = None
                 ) -> tuple[list[Evaluation], int, int, str]:
    """The loop itself: ask, cheap metrics, budget filter, expensive evaluation, tell.

    Whatever runs the evaluations, the trace is the same: the batch is planned in order, and
    results are recorded and told in order. With a time budget, the evaluations of a batch start
    ``parallel`` at a time, and none starts once the time left is less than such a group took so
    far: the budget is kept to within one evaluation's time (candidates the archive answers cost
    none: a resumed run replays them whatever time is left). With a ``scheduler`` (multi-fidelity),
    the candidates it promotes run before anything new is asked, each one evaluation; new ones start
    at its lowest rung. Returns the trace (every new evaluation, in order), the expensive
    evaluations used, the candidates asked and why it stopped.
    """
    state = _LoopState(evaluations)
    run = hooks.execute or (lambda jobs: [evaluator.timed(a, epochs) for a, epochs in jobs])
    timing = _Timing()
    while state.used < evaluations:
        promotions = scheduler.promotions() if scheduler else []
        if promotions:
            plan = _plan_promotions(promotions, scheduler, state, hooks)  # type: ignore[arg-type]
            done = _run_plan(plan, run, timing, state, objectives, hooks, scheduler)
            strategy.observe(done)  # a strategy may learn from every rung
            if len(done) < len(promotions):
                break  # the evaluations (or the time) ran out
            continue
        if state.asked >= MAX_CANDIDATES_PER_EVALUATION * evaluations:
            return state.trace, state.used, state.asked, "candidate cap: the budget filters out nearly every candidate"
        if len(state.known) >= strategy.space.n_distinct():
            return state.trace, state.used, state.asked, "space exhausted: every architecture has been seen"
        batch = strategy.ask()
        if not batch:
            return state.trace, state.used, state.asked, f"{strategy.name} has nothing new to propose"
        state.asked += len(batch)
        state.stale = state.stale + 1 if all(a.id in state.known for a in batch) else 0
        if state.stale >= MAX_STALE_BATCHES:
            return (state.trace, state.used, state.asked,
                    f"nothing new: {strategy.name} proposed only seen candidates {MAX_STALE_BATCHES} times in a row "
                    "(the budgets leave few architectures, and every one it finds has been evaluated)")
        cheap = evaluator.cheap(batch) if evaluator.cheap_metrics else {}
        plan = _plan(batch, cheap, state, objectives, hooks, scheduler.first if scheduler else None)
        outcomes = _run_plan(plan, run, timing, state, objectives, hooks, scheduler)
        if len(outcomes) < len(batch):
            break  # the evaluations (or the time) ran out inside this batch: nothing more is told
        strategy.tell(outcomes)
    return state.trace, state.used, state.asked, EVALUATIONS if state.used >= evaluations else TIME_BUDGET


def _run_plan(plan: list[_Step], run: Callable[[list[Job]], list[Result]], timing: _Timing, state: _LoopState,
              objectives: ObjectiveSet, hooks: LoopHooks, scheduler: SuccessiveHalving | None) -> list[Evaluation]:
    """Run a plan's expensive evaluations (as many as the time budget allows) and settle its steps in
    order, up to the first one that did not run; returns their outcomes."""
    work = [(step.arch, step.epochs) for step in plan if step.kind is _Kind.EVALUATE]
    for step in plan:  # a resumed run knows its slowest evaluation from the archive
        if step.kind is _Kind.REPLAYED and step.evaluation is not None and step.evaluation.expensive:
            timing.group_s = max(timing.group_s, step.evaluation.wall_s)
    results = timing.run(work, run, hooks) if work else []  # type: ignore[arg-type]
    if len(results) < len(work):  # the time budget ran out inside this batch
        plan = plan[:next(k for k, s in enumerate(plan) if s.kind is _Kind.EVALUATE and s.index >= len(results))]
    outcomes = _settle(plan, results, state, objectives, hooks)
    if scheduler:
        for step, e in zip(plan, outcomes):
            if step.kind in (_Kind.EVALUATE, _Kind.REPLAYED):
                scheduler.add(e)
    return outcomes


def _settle(plan: list[_Step], results: list[Result], state: _LoopState, objectives: ObjectiveSet,
            hooks: LoopHooks) -> list[Evaluation]:
    """Each planned step's evaluation, recorded and counted in order; returns them for ``tell``."""
    outcomes: list[Evaluation] = []
    for step in plan:
        if step.kind is _Kind.REPEAT:
            outcomes.append(_again(step.evaluation))  # type: ignore[arg-type]
            continue
        if step.kind is _Kind.TWIN:
            outcomes.append(_again(outcomes[step.index]))
            continue
        if step.kind is _Kind.EVALUATE:
            e = completed(step.arch, step.cheap, results[step.index], objectives, step.epochs)  # type: ignore[arg-type]
        else:
            e = step.evaluation  # type: ignore[assignment]
        if step.kind is not _Kind.REPLAYED and hooks.record:
            hooks.record(e)
        if e.arch.id not in state.known or e.ok:  # a repeat is answered with the highest rung's result
            state.known[e.arch.id] = e
        outcomes.append(e)
        state.trace.append(e)
        if e.expensive:
            state.used += 1
            if hooks.on_progress:
                hooks.on_progress(state.trace, state.used)
    return outcomes


@dataclass
class _Timing:
    """How long a group of ``parallel`` evaluations takes (the slowest so far, to be safe)."""

    group_s: float = 0.0

    def fits(self, hooks: LoopHooks) -> bool:
        """Whether one more group of evaluations ends within the time budget (always, without one)."""
        if hooks.seconds_left is None:
            return True
        left = hooks.seconds_left()
        return left > 0 and left >= self.group_s

    def run(self, work: list[Job], run: Callable[[list[Job]], list[Result]], hooks: LoopHooks) -> list[Result]:
        """``work``'s results; with a time budget, group by group while the next group fits."""
        if hooks.seconds_left is None:
            return run(work)
        out: list[Result] = []
        step = max(1, hooks.parallel)
        for start in range(0, len(work), step):
            if not self.fits(hooks):
                break
            t0 = time.perf_counter()
            out += run(work[start:start + step])
            self.group_s = max(self.group_s, time.perf_counter() - t0)
        return out


def _again(e: Evaluation) -> Evaluation:
    return Evaluation(e.arch, dict(e.metrics), e.status, e.reason, e.violation, e.soft_violation, False, 0.0)


def _infeasible(arch: Architecture, cheap: dict[str, float], objectives: ObjectiveSet) -> Evaluation | None:
    """The candidate's record if its cheap metrics break a hard budget (it is then never trained)."""
    broken = objectives.broken(cheap, hard=True)
    if not broken:
        return None
    violation = float(objectives.violation(cheap, hard=True, among=cheap)[0])
    return Evaluation(arch, dict(cheap), Status.INFEASIBLE, "breaks a hard budget: " + ", ".join(c.text for c in broken),
                      violation, 0.0, False, 0.0)
