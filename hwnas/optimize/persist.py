"""How a run's evaluations reach its archive and come back from it: each expensive evaluation
committed the moment it finishes, the archive replayed through the strategy on resume, and a
line per finished evaluation where no progress bar can be drawn."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from hwnas.evaluation.sources import Evaluation, Status
from hwnas.optimize.archive import Archive, ArchiveError, Record, job_key
from hwnas.optimize.config import RunConfig
from hwnas.optimize.evaluator import CandidateEvaluator, Result
from hwnas.optimize.objectives import ObjectiveSet
from hwnas.spaces.architecture import Architecture


class Replay:
    """Answers candidates from an archive, in the order it recorded them (resume by replay)."""

    def __init__(self, archive: Archive) -> None:
        self.path = archive.path
        self._records: Iterator[Record] = iter(list(archive.records()))
        self._next: Record | None = next(self._records, None)
        self.count = 0

    def __call__(self, arch: Architecture, epochs: float | None = None) -> Evaluation | None:
        record = self._next
        if record is None:
            return None
        if record.arch_id != arch.id or record.fidelity != epochs:
            asked = arch.string if epochs is None else f"{arch.string} for {epochs:g} epochs"
            had = record.arch if record.fidelity is None else f"{record.arch} for {record.fidelity:g} epochs"
            raise ArchiveError(f"{self.path}: replay diverged at evaluation {record.seq} (archived {had}, "
                               f"the search asked {asked}); the archive belongs to another configuration or hwnas version")
        self._next = next(self._records, None)
        self.count += 1
        return Evaluation(arch, record.metrics, record.status, record.reason, record.violation,
                          record.soft_violation, record.expensive, record.wall_s, record.fidelity)


class StashedExecution:
    """Runs a batch's expensive evaluations on an executor. Each is committed to the archive, whole
    (cheap metrics and budget included), the moment it finishes, so that a crash loses none of
    them, resume does not redo them and ``export``/``report`` see them before the batch is over."""

    def __init__(self, archive: Archive, pool: Any, setup: dict[str, Any], evaluator: CandidateEvaluator,
                 on_finished: Callable[[Evaluation], None] | None = None) -> None:
        self.archive, self.pool, self.setup, self.evaluator = archive, pool, setup, evaluator
        self.on_finished = on_finished

    def __call__(self, jobs: list[tuple[Architecture, float | None]]) -> list[Result]:
        done = {i: self.archive.stashed(job_key(a.id, epochs)) for i, (a, epochs) in enumerate(jobs)}
        todo = [i for i, r in done.items() if r is None]

        def keep(j: int, result: Result) -> None:
            arch, epochs = jobs[todo[j]]
            cheap = {m: float(v[0]) for m, v in self.evaluator.cheap([arch]).items()} if self.evaluator.cheap_metrics else {}
            e = completed(arch, cheap, result, self.evaluator.objectives, epochs)
            self.archive.stash(e)
            if self.on_finished:
                self.on_finished(e)

        fresh = self.pool.run(self.setup, [(jobs[i][0].string, jobs[i][1]) for i in todo], on_result=keep) if todo else []
        for i, r in zip(todo, fresh):
            done[i] = r
        return [done[i] for i in range(len(jobs))]  # type: ignore[misc]


def completed(arch: Architecture, cheap: dict[str, float], result: Result, objectives: ObjectiveSet,
              epochs: float | None = None) -> Evaluation:
    """The record of one expensive evaluation (``result``: metrics, failure reason, seconds): its
    metrics with the cheap ones, and the violation of the budgets on its expensive metrics (a failed
    one has none)."""
    values, reason, wall_s = result
    metrics = {**cheap, **values}
    arrays = {m: np.array([metrics.get(m, np.nan)]) for m in objectives.metrics}
    expensive = [m for m in objectives.metrics if m not in cheap]  # cheap budgets were checked before it ran
    violation = float(objectives.violation(arrays, hard=True, among=expensive)[0]) if reason is None else 0.0
    soft = float(objectives.violation(arrays, hard=False)[0]) if reason is None else 0.0
    return Evaluation(arch, metrics, Status.FAILED if reason else Status.COMPLETE, reason, violation, soft, True, wall_s,
                      epochs)


PROGRESS = logging.getLogger("hwnas.progress")  # one line per finished evaluation; `--no-progress` silences it


def finished_line(config: RunConfig, done: int) -> Callable[[Evaluation], None]:
    """Where no progress bar is drawn (a library call, a log file, a pipe): one line per finished
    evaluation, at INFO on the ``hwnas.progress`` logger."""
    count = [done]
    started = time.monotonic()

    def line(e: Evaluation) -> None:
        count[0] += 1
        values = "  ".join(f"{m}={e.metrics[m]:.4g}" for m in config.objectives.names if m in e.metrics)
        outcome = values if e.ok else f"failed: {e.reason}"
        total = f"/{config.evaluations}" if not config.time_budget_s else ""
        epochs = f" at {e.fidelity:g} epochs" if e.fidelity is not None else ""
        elapsed = time.monotonic() - started
        PROGRESS.info(f"evaluation {count[0]}{total}{epochs} ({e.wall_s:.1f} s, {elapsed:.0f} s since start"
                      f"{time_left(config, count[0] - done, count[0], elapsed)}): {outcome}  {e.arch.string}")

    return line


def time_left(config: RunConfig, new: int, count: int, elapsed_s: float) -> str:
    """``, about 12 min left``: the search's own estimate once 3 evaluations ran here (the mean time
    of one so far, times those left), or what is left of a time budget; empty before that."""
    if new < 3:
        return ""
    left_s = (config.evaluations - count) * elapsed_s / new
    if config.time_budget_s:
        left_s = min(left_s, config.time_budget_s - elapsed_s)
    left_s = max(0.0, left_s)
    return f", about {left_s / 60:.0f} min left" if left_s >= 90 else f", about {left_s:.0f} s left"
