"""A search in its run folder: the config (new or resumed), the evaluator and strategy, the archive,
executors, progress, and the front at the end; the ask/tell loop itself is ``asktell``.

A candidate that breaks a hard budget on its cheap metrics is recorded ``infeasible`` and never
trained (nor counted); an expensive evaluation that raises, returns NaN or runs out of memory or
time is recorded ``failed`` and the search goes on; a repeated architecture gets its earlier
result. Resume replays the archive through the strategy from the same seed, so nothing finished
is recomputed. Raises SearchError (ConfigError for a usage error) and LockedError.

How it works, and why: ``docs/design.md`` (hwnas.optimize.loop).
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
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
from hwnas.optimize.asktell import EVALUATIONS, TIME_BUDGET, LoopHooks, run_strategy
from hwnas.optimize.config import ConfigError, RunConfig, SearchError, make_config
from hwnas.optimize.evaluator import CandidateEvaluator, make_evaluator
from hwnas.optimize.fidelity import SuccessiveHalving
from hwnas.optimize.objectives import ObjectiveSet
from hwnas.optimize.outputs import (front_members, front_of, front_record, front_title, history, plot_front,
                                  progress_info, write_front, write_history)
from hwnas.optimize.result import FrontMember, SearchResult
from hwnas.optimize.persist import Replay, StashedExecution, finished_line
from hwnas.optimize.rundir import RunDir
from hwnas.optimize.sanity import budget_warnings
from hwnas.optimize.strategies import STRATEGIES, Strategy
from hwnas.spaces import SearchSpace

__all__ = ["FrontMember", "SearchError", "SearchResult", "make_config", "run_search", "run_strategy"]

BUDGET_CHECK_STREAM = 1  # the budget check draws from its own stream of the run's seed, not the strategy's


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
    """The stored config of a resumed run, with ``evaluations`` or ``time_budget_s`` raised or
    lowered if asked; any other change is refused (the trace so far was made with the stored settings)."""
    unknown = sorted(k for k in changes if not hasattr(stored, k))
    if unknown:
        raise ConfigError(f"resume: {unknown[0]!r} is not a setting of a run")
    other = sorted(k for k, v in changes.items() if k not in ("evaluations", "time_budget_s") and getattr(stored, k) != v)
    if other:
        key = other[0]
        raise ConfigError(f"{key} {changes[key]!r} differs from the run's {key} {getattr(stored, key, None)!r}: a "
                          "resumed run keeps the settings it was started with; start a new run folder to change it")
    if changes.get("time_budget_s") is not None:  # more (or less) time for the same search
        stored = stored.replace(time_budget_s=changes["time_budget_s"])
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
    scheduler = None
    if config.fidelity:
        evaluator.check_fidelities(config.fidelity.rungs())
        scheduler = SuccessiveHalving(evaluator.objectives, config.fidelity)
    strategy = _make_strategy(config, space, evaluator)
    archive = Archive(run.archive_path)
    if resume:
        archive.set_meta("config", config.to_dict())  # --evaluations may have extended it
    else:
        for key, value in (("config", config.to_dict()), ("versions", versions()), ("fingerprint", fingerprint),
                           ("sources", [s.describe() for s in sources]), ("created", time.strftime("%Y-%m-%dT%H:%M:%S%z"))):
            archive.set_meta(key, value)
        _warn_first(config, space, evaluator, sources, log, executor)
    replay = Replay(archive)
    clock = _Clock(archive.meta("time_spent_s", 0.0) if resume else 0.0, config.time_budget_s)

    def record(e: Evaluation) -> None:
        archive.add(e, strategy=config.strategy, seed=config.seed, started=time.time() - e.wall_s)
        archive.set_meta("time_spent_s", clock.spent_s())  # a resumed run's time budget counts from here

    pool = make_executor(executor, evaluator=evaluator, space=space)
    # where no bar is drawn (a library call, a log file, a pipe): a log line per finished evaluation
    drawn = progress and sys.stderr.isatty()
    finished = None if drawn else finished_line(config, archive.count() + len(archive.pending(space)))
    execute = StashedExecution(archive, pool, worker_setup(config, pool.threads_per_worker()), evaluator, finished)
    with Progress(TextColumn(f"[bold]{config.strategy}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[info]}"), TimeRemainingColumn(), disable=not progress) as bar:
        task = bar.add_task("search", total=None if config.time_budget_s else config.evaluations, info="")

        def show(trace: list[Evaluation], used: int) -> None:
            if progress:
                bar.update(task, completed=used, info=progress_info(trace, config.objectives, scheduler))

        try:
            hooks = LoopHooks(replay, record, show, execute, pool.workers,
                              clock.seconds_left if config.time_budget_s else None)
            trace, used, asked, stopped = run_strategy(strategy, evaluator, evaluator.objectives, config.evaluations,
                                                       hooks, scheduler)
        finally:
            pool.close()
    spent_s = clock.spent_s()  # the search's time; writing the front after it is not counted
    archive.set_meta("state", {"used": used, "asked": asked, "replayed": replay.count, "stopped": stopped})
    archive.set_meta("time_spent_s", spent_s)
    _say_how_it_ended(config, (used, len(trace), replay.count), stopped, spent_s, log)
    front, feasible = _finish(run, trace, evaluator, archive, config, used)
    archive.close()
    members = [FrontMember(m["arch"], m["arch_id"], {k: m[k] for k in config.objectives.metrics}, bool(m["feasible"]),
                           float(m["violation"]), m.get("epochs")) for m in front]
    return SearchResult(run.path, members, feasible, trace, used, config, stopped, history(trace, config.objectives),
                        seconds=spent_s)


def _warn_first(config: RunConfig, space: SearchSpace, evaluator: CandidateEvaluator, sources: list[Any],
                log: Any, executor: str | None = None) -> None:
    """Before a new search spends anything: budgets that bind nothing or exclude everything, what
    the sources say (a validation split too small to tell candidates apart), and a training whose
    thread count, left to each worker, would make the trace differ from another executor's."""
    if (executor or "local") != "local" and config.accuracy and estimator(config.accuracy).threads \
            and "threads" not in config.accuracy_options:
        log(f"warning: {config.accuracy} trains with each worker's share of the cores, and its float sums depend on "
            "the thread count: --accuracy-opt threads=N gives the same trace under every executor")
    for line in budget_warnings(config.objectives.constraints, space, evaluator,
                                np.random.default_rng([config.seed, BUDGET_CHECK_STREAM])):
        log(f"warning: {line}")
    for source in sources:
        for line in source.warnings():
            log(f"warning: {line}")


def _say_how_it_ended(config: RunConfig, counts: tuple[int, int, int], stopped: str, spent_s: float,
                      log: Any) -> None:
    """Lines for a resumed run, a time budget reached, or a search that ended early.
    ``counts``: evaluations used, candidates in the trace, and those replayed from the archive."""
    used, traced, replayed = counts
    if replayed:
        log(f"resumed: {replayed} archived evaluations replayed, {traced - replayed} new")
    if stopped == TIME_BUDGET:
        log(f"time budget: {used} evaluations in {spent_s:.0f} s of {config.time_budget_s:g} s")
    elif stopped != EVALUATIONS:
        log(f"warning: stopped early ({stopped}) after {used} of {config.evaluations} evaluations")


@dataclass
class _Clock:
    """A search's wall time: what earlier runs of it spent, and this one since it started."""

    before_s: float
    budget_s: float | None
    start: float = field(default_factory=time.monotonic)

    def spent_s(self) -> float:
        return self.before_s + time.monotonic() - self.start

    def seconds_left(self) -> float:
        return (self.budget_s or math.inf) - self.spent_s()


def _least_violating(trace: list[Evaluation], evaluator: CandidateEvaluator, objectives: ObjectiveSet,
                     epochs: float | None) -> list[Evaluation]:
    """When nothing met the budget, nothing was evaluated expensively: the least-violating
    candidates, evaluated now (clearly marked as such by the caller)."""
    cands = sorted({e.arch.id: e for e in trace if e.status is Status.INFEASIBLE}.values(), key=lambda e: e.violation)
    least = [e for e in cands if math.isclose(e.violation, cands[0].violation, rel_tol=1e-9)][:10] if cands else []
    done = []
    for e in least:
        values, reason = evaluator.expensive(e.arch, epochs)
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
        front = _least_violating(trace, evaluator, objectives, config.fidelity.max_epochs if config.fidelity else None)
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
