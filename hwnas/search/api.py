"""``hwnas.search(...)``: one call for a whole search, taking names and paths as the command line
does (the package itself is callable: ``import hwnas; hwnas.search(space="nb201", ...)``)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from hwnas.core.log import say
from hwnas.search.config import ConfigError, RunConfig
from hwnas.search.loop import search as _search
from hwnas.search.objectives import ObjectiveSet, load_objectives, objectives_from_specs
from hwnas.search.minimize import minimize
from hwnas.search.minimize import resume as resume_run
from hwnas.search.problem import Problem
from hwnas.search.result import SearchResult

__all__ = ["search"]

PathLike = str | os.PathLike[str]


def _objectives(objectives: str | PathLike | ObjectiveSet | Sequence[str]) -> ObjectiveSet:
    if isinstance(objectives, ObjectiveSet):
        return objectives
    if isinstance(objectives, (str, os.PathLike)):
        return load_objectives(objectives)
    return objectives_from_specs(list(objectives))


def search(config: RunConfig | Mapping[str, Any] | None = None, run_dir: PathLike | None = None, *,
           space: str | None = None, objectives: str | PathLike | ObjectiveSet | Sequence[str] = "accuracy-latency",
           input_shape: str = "3x32x32", num_classes: int = 10, space_options: Mapping[str, float] | None = None,
           budgets: Sequence[str] = (), table: PathLike | None = None, benchmark: PathLike | None = None,
           columns: Mapping[str, str] | None = None, accuracy: str | None = None,
           accuracy_options: Mapping[str, Any] | None = None, strategy: str = "bo",
           strategy_options: Mapping[str, Any] | None = None, evaluations: int = 100, seed: int = 0,
           time_limit_s: float | None = None, executor: str | None = None, resume: bool = False,
           progress: bool = False, log: Callable[[str], None] = say) -> SearchResult:
    """Search ``space`` for the Pareto front of ``objectives`` under ``budgets``; see
    :class:`~hwnas.search.result.SearchResult` for what comes back.

    Either describe the search with the keywords below, or pass a ``config`` made by
    :func:`~hwnas.search.config.make_config` (or stored by an earlier run).

    :param run_dir: the run folder: archive, front and history (required).
    :param objectives: a preset name (``"accuracy-latency"``; ``hwnas objectives`` lists them) or
        file, an :class:`~hwnas.search.objectives.ObjectiveSet`, or specs such as
        ``["accuracy:max", "latency_ms:min"]``.
    :param budgets: hard budgets such as ``"latency_ms<=5"``.
    :param table: the device's latency table: provides ``latency_ms`` (and ``energy_mj``).
    :param benchmark: a tabular benchmark (CSV or Parquet with an ``arch`` column); ``columns`` maps
        metrics to its columns.
    :param accuracy: ``"table"`` (benchmark), ``"train"`` or ``"supernet"``, with ``accuracy_options``
        such as ``{"dataset": "mnist5k", "epochs": 3}`` (``quantized=1``: int8 accuracy).
    :param strategy: ``bo`` (default), ``nsga2``, ``rl``, ``evolution``, ``progressive`` or ``random``.
    :param executor: ``local`` (default), ``processes:N``, ``dask-local:N`` or ``dask://HOST:PORT``.
    :param resume: continue the search stored in ``run_dir`` (the other settings are read from it;
        ``config={"evaluations": N}`` extends or shortens it, any other differing setting is refused).
    :raises SearchError: a search that cannot be set up or resumed (its subclass ``ConfigError``: a
        setting out of range). :raises LockedError: another process writes ``run_dir``.
    """
    if run_dir is None:
        raise ConfigError("search needs run_dir: the folder for its archive and front")
    if resume:  # a mapping given with resume holds changes to the stored run: only evaluations may differ
        changes = config if isinstance(config, Mapping) else None
        return resume_run(run_dir, changes=changes, executor=executor, progress=progress, log=log)
    if config is not None:
        return _search(config, run_dir, progress=progress, executor=executor, log=log)
    if space is None:
        raise ConfigError("search needs space= (or a config, or resume=True)")
    problem = Problem.build(space=space, input_shape=input_shape, num_classes=num_classes,
                            space_options=space_options, objectives=_objectives(objectives), budgets=budgets,
                            table=os.fspath(table) if table else None,
                            benchmark=os.fspath(benchmark) if benchmark else None, columns=dict(columns or {}),
                            accuracy=accuracy, accuracy_options=dict(accuracy_options or {}), time_limit_s=time_limit_s)
    return minimize(problem, strategy, evaluations=evaluations, run_dir=run_dir, seed=seed,
                    strategy_options=strategy_options, executor=executor, progress=progress)
