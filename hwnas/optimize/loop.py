"""The search loop, written once for every strategy: ask -> cheap metrics -> budget filter ->
expensive evaluation -> archive -> tell, until the evaluations are spent.

A candidate that breaks a hard budget on its cheap metrics is recorded ``infeasible`` and never
trained (nor counted); an expensive evaluation that raises, returns NaN or runs out of memory or
time is recorded ``failed`` and the search goes on; a repeated architecture gets its earlier
result. Resume replays the archive through the strategy from the same seed, so nothing finished
is recomputed. Raises SearchError (ConfigError for a usage error) and LockedError.

How it works, and why: ``docs/design.md`` (hwnas.optimize.loop).
"""

from __future__ import annotations

import contextlib
import enum
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hwnas.core.errors import UsageError
from hwnas.core.files import check_target
from hwnas.core.log import say
from hwnas.core.locks import exclusive
from hwnas.core.versions import versions
from hwnas.evaluation.accuracy import estimator
from hwnas.evaluation.sources import Evaluation, Status
from hwnas.optimize.archive import Archive
from hwnas.optimize.config import ConfigError, RunConfig, SearchError, make_config
from hwnas.optimize.evaluator import CandidateEvaluator, Result, make_evaluator
from hwnas.optimize.objectives import ObjectiveSet
from hwnas.optimize.outputs import (front_members, front_of, front_record, front_title, history, plot_front,
                                  progress_info, write_front, write_history)
from hwnas.optimize.result import FrontMember, SearchResult
from hwnas.optimize.persist import Replay, StashedExecution, completed, finished_line
from hwnas.optimize.rundir import RunDir
from hwnas.optimize.sanity import budget_warnings
from hwnas.optimize.strategies import STRATEGIES, Strategy
from hwnas.spaces import SearchSpace
from hwnas.spaces.architecture import Architecture

__all__ = ["FrontMember", "SearchError", "SearchResult", "make_config", "run_search", "run_strategy"]

BUDGET_CHECK_STREAM = 1  # the budget check draws from its own stream of the run's seed, not the strategy's
MAX_CANDIDATES_PER_EVALUATION = 50  # stop asking when a budget filters out nearly everything


def _run_config(config: RunConfig | dict[str, Any], run: RunDir, resume: bool) -> RunConfig:
    """The config to run: the stored one on resume. An estimator that trains an artefact once
    keeps it in the run folder, so a resumed search and every worker load it."""
    if resume:
        if not run.archive_path.is_file():
            raise SearchError(f"{run.path}: no archive.sqlite to resume")
        config = _extended(run.config(), config if isinstance(config, dict) else {}, run)
    elif run.has_search():
        raise SearchError(f"{run.path} already holds a search; use --resume {run.path} or another --run-dir")
    if not isinstance(config, RunConfig):
        config = RunConfig.from_dict(config)
    artifact = estimator(config.accuracy).artifact if config.accuracy else None
    if artifact and not config.accuracy_options.get("path"):
        config = config.replace(accuracy_options={**config.accuracy_options, "path": str((run / artifact).resolve())})
    return config


def _extended(stored: RunConfig, changes: dict[str, Any], run: RunDir) -> RunConfig:
    """The stored config of a resumed run, with ``evaluations`` raised or lowered if asked; any
    other change is refused (the trace so far was made with the stored settings)."""
    unknown = sorted(k for k in changes if not hasattr(stored, k))
    if unknown:
        raise ConfigError(f"resume: {unknown[0]!r} is not a setting of a run")
    other = sorted(k for k, v in changes.items() if k != "evaluations" and getattr(stored, k) != v)
    if other:
        key = other[0]
        raise ConfigError(f"{key} {changes[key]!r} differs from the run's {key} {getattr(stored, key, None)!r}: a "
                          "resumed run keeps the settings it was started with; start a new run folder to change it")
    evaluations = changes.get("evaluations", stored.evaluations)
    if evaluations == stored.evaluations:
        return stored
    with Archive(run.archive_path, readonly=True) as archive:
        used = archive.count() + len(archive.pending(stored.build_space()))
    if evaluations < used:
        raise ConfigError(f"--evaluations {evaluations}: the run has already spent {used}")
    return stored.replace(evaluations=evaluations)


def _make_strategy(config: RunConfig, space: SearchSpace, evaluator: CandidateEvaluator) -> Strategy:
    # the evaluator's objectives: each metric's cheapness resolved from its source
    return STRATEGIES.get(config.strategy).create(space, evaluator.objectives, np.random.default_rng(config.seed),
                                                  config.strategy_options, cheap=evaluator.cheap)


def run_search(config: RunConfig | dict[str, Any], run_dir: str | Path, *, resume: bool = False, progress: bool = True,
           log: Any = say, executor: str | None = None) -> SearchResult:
    """Run (or resume) a search described by ``make_config``; see the module docstring.

    ``executor`` says where expensive evaluations run (``hwnas.optimize.executors``: local,
    processes:N, dask-local:N, dask://HOST:PORT); it is not part of the run: the trace is the
    same whatever runs it, and a run may be resumed with another executor.
    """
    from hwnas.optimize.executors import parse_executor

    parse_executor(executor)  # a malformed --executor is refused before the run folder is touched
    run = RunDir(run_dir)
    created = not run.path.exists()
    try:
        with exclusive(run.path, f"run folder {run.path}"):  # one writer: a second search is refused
            return _search(config, run, resume, progress, log, executor)
    except UsageError:
        if created:  # refused before anything was written: leave no empty folder behind
            with contextlib.suppress(OSError):
                run.path.rmdir()
        raise


def _search(config: RunConfig | dict[str, Any], run: RunDir, resume: bool, progress: bool, log: Any,
            executor: str | None) -> SearchResult:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from hwnas.optimize.executors import make_executor, worker_setup

    for name in (RunDir.FRONT_JSON, RunDir.FRONT_CSV, RunDir.FRONT_PNG, RunDir.HISTORY):
        check_target(run / name)  # a planted link or device is refused before any work, not after it
    config = _run_config(config, run, resume)
    space = config.build_space()
    evaluator, sources, fingerprint = make_evaluator(config, space)
    strategy = _make_strategy(config, space, evaluator)
    archive = Archive(run.archive_path)
    if resume:
        archive.set_meta("config", config.to_dict())  # --evaluations may have extended it
    else:
        for key, value in (("config", config.to_dict()), ("versions", versions()), ("fingerprint", fingerprint),
                           ("sources", [s.describe() for s in sources]), ("created", time.strftime("%Y-%m-%dT%H:%M:%S%z"))):
            archive.set_meta(key, value)
        for line in budget_warnings(config.objectives.constraints, space, evaluator,
                                    np.random.default_rng([config.seed, BUDGET_CHECK_STREAM])):
            log(f"warning: {line}")
    replay = Replay(archive)

    def record(e: Evaluation) -> None:
        archive.add(e, strategy=config.strategy, seed=config.seed, started=time.time() - e.wall_s)

    pool = make_executor(executor, evaluator=evaluator, space=space)
    finished = finished_line(config, archive.count() + len(archive.pending(space))) if progress and not sys.stderr.isatty() else None
    execute = StashedExecution(archive, pool, worker_setup(config, pool.threads_per_worker()), evaluator, finished)
    with Progress(TextColumn(f"[bold]{config.strategy}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[info]}"), TimeRemainingColumn(), disable=not progress) as bar:
        task = bar.add_task("search", total=config.evaluations, info="")

        def show(trace: list[Evaluation], used: int) -> None:
            if progress:
                bar.update(task, completed=used, info=progress_info(trace, config.objectives))

        try:
            trace, used, asked, stopped = run_strategy(strategy, evaluator, evaluator.objectives, config.evaluations,
                                                       lookup=replay, record=record, on_progress=show, execute=execute)
        finally:
            pool.close()
    archive.set_meta("state", {"used": used, "asked": asked, "replayed": replay.count, "stopped": stopped})
    if replay.count:
        log(f"resumed: {replay.count} archived evaluations replayed, {len(trace) - replay.count} new")
    if stopped != "budget":
        log(f"warning: stopped early ({stopped}) after {used} of {config.evaluations} evaluations")
    front, feasible = _finish(run, trace, evaluator, archive, config, used)
    archive.close()
    members = [FrontMember(m["arch"], m["arch_id"], {k: m[k] for k in config.objectives.metrics}, bool(m["feasible"]),
                           float(m["violation"])) for m in front]
    return SearchResult(run.path, members, feasible, trace, used, config, stopped, history(trace, config.objectives))


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


@dataclass
class _LoopState:
    evaluations: int  # the expensive evaluations to spend
    known: dict[str, Evaluation] = field(default_factory=dict)
    trace: list[Evaluation] = field(default_factory=list)
    used: int = 0
    asked: int = 0


def _plan(batch: list[Architecture], cheap: dict[str, np.ndarray], state: _LoopState, objectives: ObjectiveSet,
          lookup: Callable[[Architecture], Evaluation | None] | None) -> list[_Step]:
    """Decide, in order, what each candidate of a batch needs; stops where the evaluations would run out."""
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
            e = lookup(arch) if lookup else None
            if e is not None:
                plan.append(_Step(_Kind.REPLAYED, e))
                planned_used += int(e.expensive)
                continue
            values = {m: float(v[i]) for m, v in cheap.items()}
            e = _infeasible(arch, values, objectives)
            if e is not None:
                plan.append(_Step(_Kind.SETTLED, e))
                continue
            plan.append(_Step(_Kind.EVALUATE, index=work, cheap=values, arch=arch))
            work += 1
            planned_used += 1
    return plan


def run_strategy(
    strategy: Any, evaluator: CandidateEvaluator, objectives: ObjectiveSet, evaluations: int, *,
    lookup: Callable[[Architecture], Evaluation | None] | None = None,
    record: Callable[[Evaluation], None] | None = None,
    on_progress: Callable[[list[Evaluation], int], None] | None = None,
    execute: Callable[[list[Architecture]], list[Result]] | None = None,
) -> tuple[list[Evaluation], int, int, str]:
    """The loop itself: ask, cheap metrics, budget filter, expensive evaluation, tell.

    ``lookup`` may answer a candidate from elsewhere (the archive, on resume) before it is
    evaluated; ``record`` sees every new evaluation, in order. ``execute`` runs the expensive
    evaluations of one batch (default: one after another, here) and returns (metrics, failure
    reason, seconds) per candidate, in order. Whatever runs them, the trace is the same: the
    batch is planned in order, and results are recorded and told in order. Returns the trace
    (every new candidate, in order), the expensive evaluations used, the candidates asked and
    why it stopped.
    """
    state = _LoopState(evaluations)
    run = execute or (lambda archs: [evaluator.timed(a) for a in archs])
    while state.used < evaluations:
        if state.asked >= MAX_CANDIDATES_PER_EVALUATION * evaluations:
            return state.trace, state.used, state.asked, "candidate cap: the budget filters out nearly every candidate"
        if len(state.known) >= strategy.space.n_distinct():
            return state.trace, state.used, state.asked, "space exhausted: every architecture has been seen"
        batch = strategy.ask()
        if not batch:
            return state.trace, state.used, state.asked, f"{strategy.name} has nothing new to propose"
        state.asked += len(batch)
        cheap = evaluator.cheap(batch) if evaluator.cheap_metrics else {}
        plan = _plan(batch, cheap, state, objectives, lookup)
        work = [step.arch for step in plan if step.kind is _Kind.EVALUATE]
        results = run(work) if work else []  # type: ignore[arg-type]
        outcomes: list[Evaluation] = []
        for step in plan:
            if step.kind is _Kind.REPEAT:
                outcomes.append(_again(step.evaluation))  # type: ignore[arg-type]
                continue
            if step.kind is _Kind.TWIN:
                outcomes.append(_again(outcomes[step.index]))
                continue
            if step.kind is _Kind.EVALUATE:
                metrics, reason, wall_s = results[step.index]
                e = completed(step.arch, step.cheap, metrics, reason, wall_s, objectives)  # type: ignore[arg-type]
            else:
                e = step.evaluation  # type: ignore[assignment]
            if step.kind is not _Kind.REPLAYED and record:
                record(e)
            state.known[e.arch.id] = e
            outcomes.append(e)
            state.trace.append(e)
            if e.expensive:
                state.used += 1
                if on_progress:
                    on_progress(state.trace, state.used)
        if state.used >= evaluations and len(outcomes) < len(batch):
            break  # the evaluations ran out inside this batch: nothing more is told
        strategy.tell(outcomes)
    return state.trace, state.used, state.asked, "budget"


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


def _least_violating(trace: list[Evaluation], evaluator: CandidateEvaluator, objectives: ObjectiveSet) -> list[Evaluation]:
    """When nothing met the budget, nothing was evaluated expensively: the least-violating
    candidates, evaluated now (clearly marked as such by the caller)."""
    cands = sorted({e.arch.id: e for e in trace if e.status is Status.INFEASIBLE}.values(), key=lambda e: e.violation)
    least = [e for e in cands if math.isclose(e.violation, cands[0].violation, rel_tol=1e-9)][:10] if cands else []
    done = []
    for e in least:
        values, reason = evaluator.expensive(e.arch)
        done.append(Evaluation(e.arch, {**e.metrics, **values}, Status.FAILED if reason else Status.COMPLETE, reason,
                               e.violation, 0.0, False, 0.0))
    front, _ = front_of(done, objectives)
    return front or least


def _finish(run: RunDir, trace: list[Evaluation], evaluator: CandidateEvaluator, archive: Archive,
            config: RunConfig, used: int) -> tuple[list[dict[str, Any]], bool]:
    objectives = config.objectives
    front, feasible = front_of(trace, objectives)
    least_violating = False
    if not front and trace:
        front = _least_violating(trace, evaluator, objectives)
        least_violating = bool(front)
    members = front_members(front, objectives)
    note = ("no candidate met the hard budget: this is the least-violating set, NOT a feasible front"
            if least_violating else "non-dominated feasible evaluations")
    record = front_record(run.path, config, archive.all_meta(), members, used=used, feasible=feasible, note=note,
                          least_violating=least_violating)
    write_front(run.path, record, members, objectives)
    write_history(run / RunDir.HISTORY, history(trace, objectives))
    plot_front(run / RunDir.FRONT_PNG, trace, front, objectives, least_violating, front_title(config))
    return members, feasible
