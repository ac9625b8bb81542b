"""Where expensive candidate evaluations run: in-process, a local process pool, or a Dask cluster.

    --executor local                 in this process (the default)
    --executor processes:N           N local worker processes
    --executor dask-local:N          an embedded Dask LocalCluster of N single-threaded workers
    --executor dask://HOST:PORT      a running Dask scheduler (``dask scheduler`` + ``dask worker``)

How it works, and why: ``docs/design.md`` (hwnas.optimize.executors).
"""

from __future__ import annotations

import abc
import concurrent.futures as cf
import dataclasses
import functools
import json
import multiprocessing
import os
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from hwnas.core.processes import die_with_parent
from hwnas.core.errors import HwnasError, UsageError
from hwnas.measure.conditions import threads_now
from hwnas.evaluation.accuracy import estimator
from hwnas.optimize.config import RunConfig
from hwnas.optimize.evaluator import CandidateEvaluator, Result, make_evaluator
from hwnas.spaces import SearchSpace

MAX_RETRIES = 3
DASK_HINT = "install the extra: pip install 'hwnas[dask]'"


class ExecutorError(HwnasError, ValueError):
    """An executor that cannot start: the Dask extra missing, a scheduler out of reach (exit 1)."""


class ExecutorUsageError(ExecutorError, UsageError):
    """A malformed --executor value, or more workers than the machine has room for (exit 2)."""


MAX_LOCAL_WORKERS_PER_CORE = 8  # more local workers than this many per core only thrash the machine


# ----- worker side ------------------------------------------------------------------------------

def worker_setup(config: RunConfig, threads: int | None) -> dict[str, Any]:
    """The part of a run a worker needs to evaluate candidates: the config as JSON (small)."""
    options = dict(config.accuracy_options)
    options.pop("cache", None)  # the driver's archive is the cache; workers never share a file
    if threads and config.accuracy and estimator(config.accuracy).threads:
        options.setdefault("threads", threads)
    return config.replace(accuracy_options=options).to_dict()


@functools.lru_cache(maxsize=1)
def _worker_evaluator(setup_json: str) -> tuple[SearchSpace, CandidateEvaluator]:
    # one per worker process and run: the dataset is read and a supernet loaded once, not per task
    config = RunConfig.from_dict(json.loads(setup_json))
    space = config.build_space()
    evaluator, _, _ = make_evaluator(config, space)
    return space, evaluator


OnResult = Callable[[int, Result], None]
Job = tuple[str, float | None]  # an architecture string, and the epochs to train it for (None: the source's own)


def evaluate_remote(setup: dict[str, Any], arch_string: str, epochs: float | None = None) -> Result:
    """Run one expensive evaluation in a worker; what the driver gets back."""
    space, evaluator = _worker_evaluator(json.dumps(setup, sort_keys=True))
    return evaluator.timed(space.parse(arch_string), epochs)


def _failed(reason: str) -> Result:
    return {}, reason, 0.0


# ----- driver side ------------------------------------------------------------------------------

class Executor(abc.ABC):
    """Runs ``evaluate_remote`` for a batch of jobs (architecture, epochs); results in submission order."""

    name: str
    workers: int

    @abc.abstractmethod
    def run(self, setup: dict[str, Any], jobs: Sequence[Job], on_result: OnResult | None = None) -> list[Result]:
        """Evaluate ``jobs``; ``on_result(i, result)`` as each finishes (any order); returns the
        results in submission order."""

    def threads_per_worker(self) -> int:
        """Torch threads per worker so that the workers together use the cores that are free now,
        and no more (a thread on a taken core stalls every OpenMP barrier of its pool)."""
        return max(1, threads_now()[0] // max(1, self.workers))

    def close(self) -> None:  # noqa: B027 - optional
        pass

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LocalExecutor(Executor):
    """In-process, one candidate at a time, with the driver's own (already built) sources."""

    name, workers = "local", 1

    def __init__(self, evaluator: Any = None, space: Any = None) -> None:
        self.evaluator, self.space = evaluator, space

    def run(self, setup: dict[str, Any], jobs: Sequence[Job], on_result: OnResult | None = None) -> list[Result]:
        out: list[Result] = []
        for i, (arch, epochs) in enumerate(jobs):
            if self.evaluator is None:
                result = evaluate_remote(setup, arch, epochs)
            else:
                result = self.evaluator.timed(self.space.parse(arch), epochs)
            if on_result:
                on_result(i, result)
            out.append(result)
        return out


class ProcessExecutor(Executor):
    """A pool of N spawned processes (not forked: torch's thread pools do not survive a fork)."""

    def __init__(self, workers: int) -> None:
        self.name, self.workers = f"processes:{workers}", workers
        self._pool: cf.ProcessPoolExecutor | None = None

    def _get_pool(self) -> cf.ProcessPoolExecutor:
        if self._pool is None:
            self._pool = cf.ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                                initializer=die_with_parent,  # no orphan outlives a kill -9
                                                initargs=(os.getpid(),))
        return self._pool

    def run(self, setup: dict[str, Any], jobs: Sequence[Job], on_result: OnResult | None = None) -> list[Result]:
        results: list[Result | None] = [None] * len(jobs)
        tries = [0] * len(jobs)
        todo = list(range(len(jobs)))
        while todo:
            try:
                futures = {self._get_pool().submit(evaluate_remote, setup, *jobs[i]): i for i in todo}
            except cf.process.BrokenProcessPool:  # a worker died between batches
                self._reset()
                continue
            todo = []
            for fut in cf.as_completed(futures):
                i = futures[fut]
                try:
                    results[i] = fut.result()
                except cf.process.BrokenProcessPool:
                    tries[i] += 1
                    if tries[i] > MAX_RETRIES:
                        results[i] = _failed(f"worker process died {tries[i]} times evaluating this candidate")
                    else:
                        todo.append(i)
                        continue
                except Exception as exc:  # an error outside the evaluator's own handling
                    results[i] = _failed(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
                if on_result:
                    on_result(i, results[i])  # type: ignore[arg-type]
            if todo:  # a worker died: the pool is broken; start a new one and resubmit what was lost
                self._reset()
        return results  # type: ignore[return-value]

    def _reset(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


class DaskExecutor(Executor):
    """A Dask client: embedded LocalCluster (``dask-local:N``) or a scheduler address."""

    def __init__(self, address: str | None = None, workers: int = 1, resources: dict[str, float] | None = None) -> None:
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise ExecutorError(f"the Dask executors need dask.distributed: {DASK_HINT}") from None
        self.resources = resources or None
        self._cluster = None
        if address is None:
            self._cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                         dashboard_address=None, host="127.0.0.1")
            self.client = Client(self._cluster)
            self.name = f"dask-local:{workers}"
        else:
            try:
                self.client = Client(address, timeout=30)
            except (OSError, TimeoutError) as exc:
                raise ExecutorError(f"cannot reach the Dask scheduler at {address}: {exc}") from None
            self.name = f"dask://{address.removeprefix('tcp://')}"
        self.workers = max(1, len(self.client.scheduler_info().get("workers", {})) or workers)

    def threads_per_worker(self) -> int:
        """Each host's cores (read on the workers) shared by the workers on that host."""
        cores: dict[str, int] = self.client.run(os.cpu_count)
        info = self.client.scheduler_info().get("workers", {})
        if not cores or not info:
            return super().threads_per_worker()
        per_host = Counter(info[a].get("host", a) for a in cores if a in info)
        return max(1, min((c or 1) // max(1, per_host[info[a].get("host", a)]) for a, c in cores.items() if a in info))

    def run(self, setup: dict[str, Any], jobs: Sequence[Job], on_result: OnResult | None = None) -> list[Result]:
        from distributed import KilledWorker, as_completed

        futures = [self.client.submit(evaluate_remote, setup, *job, pure=False, resources=self.resources) for job in jobs]
        index = {f.key: i for i, f in enumerate(futures)}
        results: list[Result | None] = [None] * len(jobs)
        for fut in as_completed(futures):
            i = index[fut.key]
            try:
                results[i] = fut.result()
            except KilledWorker:
                results[i] = _failed("the workers running it died repeatedly (dask KilledWorker); not retried further")
            except Exception as exc:
                results[i] = _failed(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
            if on_result:
                on_result(i, results[i])  # type: ignore[arg-type]
        return results  # type: ignore[return-value]

    def close(self) -> None:
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()


def parse_resources(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in filter(None, text.split(",")):
        name, _, value = item.partition("=")
        try:
            out[name] = float(value)
        except ValueError:
            raise ExecutorUsageError(f"--executor: resource {item!r} is not NAME=NUMBER, e.g. GPU=1") from None
    return out


@dataclasses.dataclass(frozen=True)
class ExecutorSpec:
    """A parsed ``--executor``: its kind, worker count, scheduler address and task resources."""

    kind: str  # local, processes, dask-local or dask
    workers: int = 1
    address: str | None = None
    resources: dict[str, float] | None = None


def _require_dask() -> None:
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise ExecutorError(f"the Dask executors need dask.distributed: {DASK_HINT}") from None


def parse_executor(text: str | None) -> ExecutorSpec:
    """Parse ``--executor`` (see the module docstring) without starting anything; raises
    ExecutorUsageError for a malformed value or too many local workers."""
    text = (text or "local").strip()
    if text == "local":
        return ExecutorSpec("local")
    kind, _, rest = text.partition(":")
    if kind == "processes" or kind == "dask-local":
        try:
            n = int(rest)
        except ValueError:
            n = 0
        if n < 1:
            raise ExecutorUsageError(f"--executor {text!r}: give the number of workers, e.g. {kind}:2")
        most = MAX_LOCAL_WORKERS_PER_CORE * (os.cpu_count() or 1)
        if n > most:
            raise ExecutorUsageError(f"--executor {text!r}: {n} workers on {os.cpu_count()} cores; at most {most} "
                                     f"({MAX_LOCAL_WORKERS_PER_CORE} per core)")
        if kind == "dask-local":
            _require_dask()
        return ExecutorSpec(kind, n)
    if kind == "dask" and rest.startswith("//"):
        _require_dask()
        address, _, query = rest[2:].partition("?")
        resources = parse_resources(query.removeprefix("resources=")) if query else None
        if not address:
            raise ExecutorUsageError(f"--executor {text!r}: give the scheduler address, e.g. dask://127.0.0.1:8786")
        return ExecutorSpec("dask", address=f"tcp://{address}", resources=resources)
    raise ExecutorUsageError(f"--executor {text!r} is not one of: local, processes:N, dask-local:N, dask://HOST:PORT")


def make_executor(text: str | None, *, evaluator: Any = None, space: Any = None) -> Executor:
    """Start the executor ``--executor`` names; ``dask://host:port?resources=GPU=1`` asks for that
    resource on every task."""
    spec = parse_executor(text)
    if spec.kind == "local":
        return LocalExecutor(evaluator, space)
    if spec.kind == "processes":
        return ProcessExecutor(spec.workers)
    if spec.kind == "dask-local":
        return DaskExecutor(workers=spec.workers)
    return DaskExecutor(address=spec.address, resources=spec.resources)
