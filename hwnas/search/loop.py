"""The search loop, written once for every strategy: ask -> cheap metrics -> budget filter ->
expensive evaluation -> archive -> tell, until the evaluation budget is spent.

* Cheap metrics (latency and energy from the table, params, FLOPs, cheap benchmark columns) are
  computed for every candidate first. A candidate that breaks a hard budget is recorded as
  ``infeasible`` and told to the strategy, but never sent to the expensive evaluation, and it does
  not count against ``evaluations``.
* An expensive evaluation that raises, returns NaN, runs out of memory or past its time limit is
  recorded as ``failed`` with the reason; the search goes on.
* An architecture already evaluated in this run (the same id: isomorphic cells included) gets its
  earlier result again, without evaluation or a new record.
* Resume (``resume=True``): the run's config is read back from the archive, the strategy is
  rebuilt from the same seed and replayed against the archived results in order, then continues.
  Nothing completed is recomputed, and a resumed seeded run ends at the front an uninterrupted one
  would have reached.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hwnas.core.versions import versions
from hwnas.search.archive import Archive, ArchiveError, Record
from hwnas.core.errors import HwnasError
from hwnas.evaluation.accuracy import ACCURACY
from hwnas.evaluation.sources import BenchmarkMetrics, Evaluation, FactsMetrics, MetricSource, TableMetrics
from hwnas.search.objectives import Constraint, ObjectiveSet, parse_budget
from hwnas.core.pareto import constrained_front, hypervolume
from hwnas.spaces import SearchSpace, get_space
from hwnas.spaces.base import Architecture
from hwnas.search.strategies import STRATEGIES

MAX_CANDIDATES_PER_EVALUATION = 50  # stop asking when a budget filters out nearly everything


class SearchError(HwnasError, RuntimeError):
    """A search that cannot be set up or resumed."""


@dataclass
class SearchResult:
    run_dir: Path
    front: list[dict[str, Any]]
    feasible: bool
    evaluations: list[Evaluation]
    used: int
    config: dict[str, Any]
    stopped: str = "budget"
    history: list[dict[str, float]] = field(default_factory=list)

    @property
    def archive_path(self) -> Path:
        return self.run_dir / "archive.sqlite"


class CandidateEvaluator:
    """Routes each metric to its source and runs the expensive ones with failure handling."""

    def __init__(self, objectives: ObjectiveSet, sources: Sequence[MetricSource], *, time_limit_s: float | None = None) -> None:
        self.objectives = objectives
        self.time_limit_s = time_limit_s
        self.route: dict[str, MetricSource] = {}
        for metric in objectives.metrics:
            source = next((s for s in sources if metric in s.provides), None)
            if source is None:
                have = sorted({m for s in sources for m in s.provides})
                raise SearchError(f"no source provides metric {metric!r} (available: {', '.join(have) or 'none'}; "
                                  "give --table for latency_ms/energy_mj, --benchmark for benchmark columns)")
            self.route[metric] = source
        self.cheap_metrics = [m for m in objectives.metrics if objectives.is_cheap(m)]
        self.expensive_metrics = [m for m in objectives.metrics if not objectives.is_cheap(m)]

    def _collect(self, metrics: list[str], archs: Sequence[Architecture]) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for source in dict.fromkeys(self.route[m] for m in metrics):
            values = source.evaluate(archs)
            for m in metrics:
                if self.route[m] is source:
                    out[m] = np.asarray(values[m], dtype=float)
        return out

    def cheap(self, archs: Sequence[Architecture]) -> dict[str, np.ndarray]:
        return self._collect(self.cheap_metrics, archs)

    def expensive(self, arch: Architecture) -> tuple[dict[str, float], str | None]:
        """The expensive metrics of one candidate, and a failure reason (None if it succeeded)."""
        try:
            with _time_limit(self.time_limit_s):
                values = self._collect(self.expensive_metrics, [arch])
        except TimeoutError:
            return {}, f"time limit of {self.time_limit_s:g} s exceeded"
        except MemoryError:
            return {}, "out of memory"
        except HwnasError as exc:
            if "no row for" in str(exc):
                raise  # a benchmark that lacks an architecture is a setup error, not a candidate failure
            return {}, f"{type(exc).__name__}: {exc}"
        except Exception as exc:  # a candidate's own failure: record it and go on
            text = str(exc).splitlines()[0] if str(exc) else ""
            reason = "out of memory" if "out of memory" in text.lower() else f"{type(exc).__name__}: {text}"
            return {}, reason
        metrics = {m: float(v[0]) for m, v in values.items()}
        bad = [m for m, v in metrics.items() if not math.isfinite(v)]
        if bad:
            return metrics, f"{', '.join(bad)} is NaN or infinite"
        return metrics, None


@contextlib.contextmanager
def _time_limit(seconds: float | None) -> Iterator[None]:
    if not seconds or not hasattr(signal, "setitimer"):
        yield
        return

    def on_alarm(_signum: int, _frame: Any) -> None:
        raise TimeoutError

    try:
        previous = signal.signal(signal.SIGALRM, on_alarm)
    except ValueError:  # not the main thread: no alarm, no limit
        yield
        return
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def build_sources(config: dict[str, Any], space: SearchSpace) -> tuple[list[MetricSource], dict[str, Any]]:
    """Metric sources from a run config; returns them and the device fingerprint (if a table)."""
    from hwnas.latency.predictor import Predictor
    from hwnas.latency.table import open_table

    sources: list[MetricSource] = []
    fingerprint: dict[str, Any] = {}
    if config.get("table"):
        table, table_space, _ = open_table(config["table"], allow_mismatch=config.get("allow_mismatch", False))
        if table_space.config() != space.config() or table_space.name != space.name:
            raise SearchError(f"{config['table']} was profiled for {table_space!r}, not {space!r}")
        sources.append(TableMetrics(Predictor(table, space)))
        fingerprint = table.fingerprint
    if config.get("benchmark"):
        sources.append(BenchmarkMetrics(config["benchmark"], space, columns=config.get("columns") or None))
    accuracy = config.get("accuracy")
    if accuracy and accuracy != "table":
        sources.insert(0, ACCURACY.get(accuracy)(space, **config.get("accuracy_options", {})))
    elif accuracy == "table" and not config.get("benchmark"):
        raise SearchError("--accuracy table needs --benchmark TABLE.csv")
    sources.append(FactsMetrics(space))
    return sources, fingerprint


def _objective_set(config: dict[str, Any]) -> ObjectiveSet:
    from hwnas.search.objectives import Objective

    o = config["objectives"]
    objs = tuple(Objective(d["name"], d["direction"], d["cheap"]) for d in o["objectives"])
    cons = tuple(parse_budget(c["budget"], hard=c["hard"]) for c in o["constraints"])
    return ObjectiveSet(objs, cons, o.get("source", "<config>"))


def make_config(
    *, space: str, input_shape: str, num_classes: int = 10, space_options: dict[str, float] | None = None,
    objectives: ObjectiveSet, budgets: Sequence[Constraint] = (), strategy: str = "bo",
    strategy_options: dict[str, Any] | None = None, evaluations: int = 100, seed: int = 0,
    table: str | None = None, benchmark: str | None = None, columns: dict[str, str] | None = None,
    accuracy: str | None = None, accuracy_options: dict[str, Any] | None = None,
    time_limit_s: float | None = None, allow_mismatch: bool = False,
) -> dict[str, Any]:
    """A search's complete, JSON-able description: stored in the archive, enough to resume."""
    if evaluations < 1:
        raise SearchError(f"evaluations must be >= 1, got {evaluations}")
    STRATEGIES.get(strategy)
    objs = objectives.with_budgets(list(budgets))
    if accuracy is None:
        accuracy = "table" if benchmark else None
    return {
        "space": space, "input_shape": input_shape, "num_classes": num_classes, "space_options": dict(space_options or {}),
        "objectives": objs.to_dict(), "strategy": strategy, "strategy_options": dict(strategy_options or {}),
        "evaluations": int(evaluations), "seed": int(seed),
        "table": str(Path(table).resolve()) if table else None,
        "benchmark": str(Path(benchmark).resolve()) if benchmark else None, "columns": dict(columns or {}),
        "accuracy": accuracy, "accuracy_options": dict(accuracy_options or {}),
        "time_limit_s": time_limit_s, "allow_mismatch": allow_mismatch,
    }


def search(config: dict[str, Any], run_dir: str | Path, *, resume: bool = False, progress: bool = True,
           log: Any = print, executor: str | None = None) -> SearchResult:
    """Run (or resume) a search described by ``make_config``; see the module docstring.

    ``executor`` says where expensive evaluations run (``hwnas.search.executors``: local,
    processes:N, dask-local:N, dask://HOST:PORT); it is not part of the run: the trace is the
    same whatever runs it, and a run may be resumed with another executor.
    """
    from hwnas.search.executors import make_executor, worker_setup

    run_dir = Path(run_dir)
    archive_path = run_dir / "archive.sqlite"
    if resume:
        if not archive_path.is_file():
            raise SearchError(f"{run_dir}: no archive.sqlite to resume")
        with Archive(archive_path) as a:
            stored = a.meta("config")
        if stored is None:
            raise SearchError(f"{archive_path}: no run config stored; cannot resume")
        config = stored
    elif archive_path.exists() and Archive(archive_path).count(expensive_only=False) > 0:
        raise SearchError(f"{run_dir} already holds a search; use --resume {run_dir} or another --run-dir")

    if config.get("accuracy") == "supernet" and not (config.get("accuracy_options") or {}).get("path"):
        # saved in the run: a resumed search and every worker load it instead of training again
        config = {**config, "accuracy_options": {**config.get("accuracy_options", {}),
                                                 "path": str((run_dir / "supernet.pt").resolve())}}
    space = get_space(config["space"], input_shape=config["input_shape"], num_classes=config["num_classes"],
                      **config["space_options"])
    objectives = _objective_set(config)
    sources, fingerprint = build_sources(config, space)
    evaluator = CandidateEvaluator(objectives, sources, time_limit_s=config.get("time_limit_s"))
    rng = np.random.default_rng(config["seed"])
    options = dict(config["strategy_options"])
    cls = STRATEGIES.get(config["strategy"])
    if cls.needs_cheap:
        options.setdefault("cheap", evaluator.cheap)
    try:
        strategy = cls(space, objectives, rng, **options)
    except TypeError as exc:
        raise SearchError(f"strategy {config['strategy']!r}: {exc}") from None

    archive = Archive(archive_path)
    if not resume:
        archive.set_meta("config", config)
        archive.set_meta("versions", versions())
        archive.set_meta("fingerprint", fingerprint)
        archive.set_meta("sources", [s.describe() for s in sources])
        archive.set_meta("created", time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    replay: Iterator[Record] = iter(list(archive.records()))
    pending: list[Record | None] = [next(replay, None)]
    replayed = [0]

    def from_archive(arch: Architecture) -> Evaluation | None:
        record = pending[0]
        if record is None:
            return None
        if record.arch_id != arch.id:
            raise ArchiveError(f"{archive_path}: replay diverged at evaluation {record.seq} (archived {record.arch}, "
                               f"strategy asked {arch.string}); the archive belongs to another configuration or hwnas version")
        pending[0] = next(replay, None)
        replayed[0] += 1
        return Evaluation(arch, record.metrics, record.status, record.reason, record.violation,
                          record.soft_violation, record.expensive, record.wall_s)

    def to_archive(e: Evaluation) -> None:
        archive.add(e, strategy=config["strategy"], seed=config["seed"], started=time.time() - e.wall_s)
        archive.unstash(e.arch.id)

    pool = make_executor(executor, evaluator=evaluator, space=space)
    setup = worker_setup(config, pool.threads_per_worker())

    def execute(archs: list[Architecture]) -> list[tuple[dict[str, float], str | None, float]]:
        # results that finished before a crash (stashed, not yet recorded in order) are not redone
        done = {i: archive.stashed(a.id) for i, a in enumerate(archs)}
        todo = [i for i, r in done.items() if r is None]

        def keep(j: int, result: tuple[dict[str, float], str | None, float]) -> None:
            archive.stash(archs[todo[j]].id, *result)

        fresh = pool.run(setup, [archs[i].string for i in todo], on_result=keep) if todo else []
        for i, r in zip(todo, fresh):
            done[i] = r
        return [done[i] for i in range(len(archs))]  # type: ignore[misc]

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    budget = config["evaluations"]
    with Progress(TextColumn(f"[bold]{config['strategy']}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[info]}"), TimeRemainingColumn(), disable=not progress) as bar:
        task = bar.add_task("search", total=budget, info="")

        def show(trace: list[Evaluation], used: int) -> None:
            if progress:
                bar.update(task, completed=used, info=_progress_info(trace, objectives))

        try:
            trace, used, asked, stopped = run_strategy(strategy, evaluator, objectives, budget, lookup=from_archive,
                                                       record=to_archive, on_progress=show, execute=execute)
        finally:
            pool.close()
    replayed_n = replayed[0]
    archive.set_meta("state", {"used": used, "asked": asked, "replayed": replayed_n, "stopped": stopped})
    if replayed_n:
        log(f"resumed: {replayed_n} archived evaluations replayed, {len(trace) - replayed_n} new")
    if stopped != "budget":
        log(f"warning: stopped early ({stopped}) after {used} of {budget} evaluations")
    front, feasible = _finish(run_dir, trace, objectives, evaluator, archive, config, used)
    archive.close()
    return SearchResult(run_dir, front, feasible, trace, used, config, stopped, _history(trace, objectives))



def run_strategy(
    strategy: Any, evaluator: CandidateEvaluator, objectives: ObjectiveSet, budget: int, *,
    lookup: Callable[[Architecture], Evaluation | None] | None = None,
    record: Callable[[Evaluation], None] | None = None,
    on_progress: Callable[[list[Evaluation], int], None] | None = None,
    execute: Callable[[list[Architecture]], list[tuple[dict[str, float], str | None, float]]] | None = None,
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
    known: dict[str, Evaluation] = {}
    trace: list[Evaluation] = []
    used = asked = 0
    stopped = "budget"
    run = execute or (lambda archs: [_expensive_timed(evaluator, a) for a in archs])
    while used < budget:
        if asked >= MAX_CANDIDATES_PER_EVALUATION * budget:
            stopped = "candidate cap: the budget filters out nearly every candidate"
            break
        batch = strategy.ask()
        asked += len(batch)
        cheap = evaluator.cheap(batch) if evaluator.cheap_metrics else {}
        # plan the batch in order: what is known, replayed, infeasible, or to be evaluated
        plan: list[tuple[str, Any]] = []
        first: dict[str, int] = {}
        todo: list[tuple[int, Architecture, dict[str, float]]] = []
        planned_used = used
        for i, arch in enumerate(batch):
            if planned_used >= budget:
                break
            if arch.id in known:
                plan.append(("again", known[arch.id]))
                continue
            if arch.id in first:
                plan.append(("same", first[arch.id]))
                continue
            first[arch.id] = len(plan)
            e = lookup(arch) if lookup else None
            if e is None:
                values = {m: float(v[i]) for m, v in cheap.items()}
                e = _infeasible(arch, values, objectives)
                if e is None:
                    todo.append((len(plan), arch, values))
                    plan.append(("todo", len(todo) - 1))
                    planned_used += 1
                    continue
                plan.append(("new", e))
            else:
                plan.append(("old", e))
                planned_used += int(e.expensive)
        results = run([a for _, a, _ in todo]) if todo else []
        outcomes: list[Evaluation] = []
        for kind, item in plan:
            if kind == "again":
                outcomes.append(_again(item, item.arch))
                continue
            if kind == "same":
                outcomes.append(_again(outcomes[item], outcomes[item].arch))
                continue
            if kind == "todo":
                _, arch, values = todo[item]
                metrics, reason, wall_s = results[item]
                e = _complete(arch, values, metrics, reason, wall_s, objectives)
                kind = "new"
            else:
                e = item
            if kind == "new" and record:
                record(e)
            known[e.arch.id] = e
            outcomes.append(e)
            trace.append(e)
            if e.expensive:
                used += 1
                if on_progress:
                    on_progress(trace, used)
        if used >= budget and len(outcomes) < len(batch):
            break  # the budget ran out inside this batch: nothing more is told
        strategy.tell(outcomes)
    return trace, used, asked, stopped


def _again(e: Evaluation, arch: Architecture) -> Evaluation:
    return Evaluation(arch, dict(e.metrics), e.status, e.reason, e.violation, e.soft_violation, False, 0.0)


def _expensive_timed(evaluator: CandidateEvaluator, arch: Architecture) -> tuple[dict[str, float], str | None, float]:
    start = time.perf_counter()
    values, reason = evaluator.expensive(arch)
    return values, reason, time.perf_counter() - start


def _infeasible(arch: Architecture, cheap: dict[str, float], objectives: ObjectiveSet) -> Evaluation | None:
    """The candidate's record if its cheap metrics break a hard budget (it is then never trained)."""
    arrays = {m: np.array([v]) for m, v in cheap.items()}
    hard_cheap = [c for c in objectives.constraints if c.hard and c.name in cheap]
    violation = float(sum(c.violation(arrays[c.name])[0] for c in hard_cheap))
    if violation <= 0:
        return None
    return Evaluation(arch, dict(cheap), "infeasible", "breaks a hard budget: " +
                      ", ".join(c.text for c in hard_cheap if c.violation(arrays[c.name])[0] > 0),
                      violation, 0.0, False, 0.0)


def _complete(arch: Architecture, cheap: dict[str, float], values: dict[str, float], reason: str | None, wall_s: float,
              objectives: ObjectiveSet) -> Evaluation:
    metrics = {**cheap, **values}
    arrays = {m: np.array([metrics.get(m, np.nan)]) for m in objectives.metrics}
    hard = [c for c in objectives.constraints if c.hard and c.name not in cheap]
    violation = float(sum(c.violation(arrays[c.name])[0] for c in hard)) if reason is None else 0.0
    soft = float(sum(c.violation(arrays[c.name])[0] for c in objectives.constraints if not c.hard)) if reason is None else 0.0
    status = "failed" if reason else "complete"
    return Evaluation(arch, metrics, status, reason, violation, soft, True, wall_s)


def _front_of(trace: Sequence[Evaluation], objectives: ObjectiveSet) -> tuple[list[Evaluation], bool]:
    done = [e for e in trace if e.ok]
    if not done:
        return [], False
    F = objectives.F({m: np.array([e.metrics[m] for e in done]) for m in objectives.names})
    idx, feasible = constrained_front(F, np.array([e.violation for e in done]))
    return [done[i] for i in idx], feasible


def _history(trace: Sequence[Evaluation], objectives: ObjectiveSet) -> list[dict[str, float]]:
    """Run-relative hypervolume after each expensive evaluation (objectives scaled by the run's
    own ideal and nadir of complete evaluations; reference point 1.1 in each), as a fraction of
    the reference box."""
    done = [e for e in trace if e.ok and e.violation == 0]
    if not done:
        return []
    F_all = objectives.F({m: np.array([e.metrics[m] for e in done]) for m in objectives.names})
    ideal, nadir = F_all.min(0), F_all.max(0)
    span = np.where(nadir > ideal, nadir - ideal, 1.0)
    rows, k, seen = [], 0, []
    for e in trace:
        if not e.expensive:
            continue
        k += 1
        if e.ok and e.violation == 0:
            seen.append(e)
        F = (objectives.F({m: np.array([x.metrics[m] for x in seen]) for m in objectives.names}) - ideal) / span if seen else np.zeros((0, len(ideal)))
        box = 1.1 ** len(ideal)  # reported as a fraction of the reference box: 0..1
        rows.append({"eval": k, "hypervolume": hypervolume(F, np.full(len(ideal), 1.1)) / box if len(F) else 0.0})
    return rows


def _progress_info(trace: Sequence[Evaluation], objectives: ObjectiveSet) -> str:
    """Front size, best feasible accuracy and the run-relative hypervolume so far."""
    front, feasible = _front_of(trace, objectives)
    acc = next((o for o in objectives.objectives if not o.cheap and o.direction == "max"), None)
    best = max((e.metrics[acc.name] for e in front), default=float("nan")) if acc and feasible else float("nan")
    hv = float("nan")
    done = [e for e in trace if e.ok and e.violation == 0]
    if feasible and done:
        F = objectives.F({m: np.array([e.metrics[m] for e in done]) for m in objectives.names})
        lo, hi = F.min(0), F.max(0)
        hv = hypervolume((F - lo) / np.where(hi > lo, hi - lo, 1.0), np.full(F.shape[1], 1.1)) / 1.1 ** F.shape[1]
    return (f"front {len(front)}{'' if feasible or not front else ' (infeasible)'}  "
            f"best {acc.name if acc else ''} {best:.4g}  HV {hv:.3f}")


def _finish(run_dir: Path, trace: list[Evaluation], objectives: ObjectiveSet, evaluator: CandidateEvaluator,
            archive: Archive, config: dict[str, Any], used: int) -> tuple[list[dict[str, Any]], bool]:
    front, feasible = _front_of(trace, objectives)
    least_violating = False
    if not front and trace:
        # nothing met the budget, so nothing was evaluated expensively: return the least-violating
        # candidates, evaluated now, clearly marked
        cands = sorted({e.arch.id: e for e in trace if e.status == "infeasible"}.values(), key=lambda e: e.violation)
        least = [e for e in cands if math.isclose(e.violation, cands[0].violation, rel_tol=1e-9)][:10] if cands else []
        done = []
        for e in least:
            values, reason = evaluator.expensive(e.arch)
            done.append(Evaluation(e.arch, {**e.metrics, **values}, "failed" if reason else "complete", reason,
                                   e.violation, 0.0, False, 0.0))
        front, _ = _front_of(done, objectives)
        front = front or least
        least_violating = bool(front)
    members = [{"arch": e.arch.string, "arch_id": e.arch.id, **{m: e.metrics.get(m) for m in objectives.metrics},
                "violation": e.violation, "feasible": e.violation == 0} for e in front]
    # listed from the cheapest (e.g. fastest) member up, by the first cheap objective
    order = next((o for o in objectives.objectives if o.cheap), objectives.objectives[0])
    members.sort(key=lambda r: float(order.to_min(np.asarray(r[order.name], dtype=float))))
    meta = archive.all_meta()
    out = {"run_dir": str(run_dir), "feasible": feasible, "least_violating": least_violating,
           "note": ("no candidate met the hard budget: this is the least-violating set, NOT a feasible front"
                    if least_violating else "non-dominated feasible evaluations"),
           "objectives": objectives.to_dict(), "evaluations_used": used, "front": members,
           "config": config, "versions": meta.get("versions"), "fingerprint": meta.get("fingerprint"),
           "sources": meta.get("sources"), "seed": config["seed"]}
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "front.json").write_text(json.dumps(out, indent=1, default=float) + "\n")
    with (run_dir / "front.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["arch", "arch_id", *objectives.metrics, "feasible"])
        for r in members:
            w.writerow([r["arch"], r["arch_id"], *(r[m] for m in objectives.metrics), r["feasible"]])
    with (run_dir / "history.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["eval", "hypervolume"])
        for row in _history(trace, objectives):
            w.writerow([row["eval"], f"{row['hypervolume']:.6f}"])
    _plot_front(run_dir / "front.png", trace, front, objectives, least_violating)
    return members, feasible


def _plot_front(path: Path, trace: Sequence[Evaluation], front: Sequence[Evaluation], objectives: ObjectiveSet,
                least_violating: bool) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    objs = objectives.objectives
    if len(objs) < 2:
        return
    # accuracy-like objective on y, the first cheap one on x
    y = next((o for o in objs if not o.cheap), objs[0])
    x = next((o for o in objs if o is not y), objs[1])
    fig, ax = plt.subplots(figsize=(6, 4.2), dpi=110)
    done = [e for e in trace if e.ok]
    if done:
        ax.scatter([e.metrics[x.name] for e in done], [e.metrics[y.name] for e in done], s=10, color="0.7", label="evaluated")
    if front:
        pts = sorted((e.metrics.get(x.name), e.metrics.get(y.name)) for e in front)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", color="tab:red" if least_violating else "tab:blue",
                label="least-violating (budget not met)" if least_violating else "Pareto front")
    for c in objectives.constraints:
        if c.name == x.name:
            ax.axvline(c.bound, color="k", ls="--", lw=1, label=f"budget {c.text}")
    ax.set_xlabel(f"{x.name} ({x.direction})")
    ax.set_ylabel(f"{y.name} ({y.direction})")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
