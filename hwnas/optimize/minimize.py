"""The one call that runs a search: ``minimize(problem, strategy, ...)``, and ``resume`` beside it.
The command line, ``hwnas.search(...)`` and the examples all go through here."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from hwnas.core.log import say
from hwnas.optimize.config import RunConfig, Termination
from hwnas.optimize.loop import run_search
from hwnas.optimize.problem import Problem
from hwnas.optimize.result import SearchResult

PathLike = str | os.PathLike[str]


def minimize(problem: Problem, strategy: str = "bo", *, evaluations: int | Termination = 100, run_dir: PathLike,
             seed: int = 0, strategy_options: Mapping[str, Any] | None = None, executor: str | None = None,
             progress: bool = False) -> SearchResult:
    """Search ``problem`` with ``strategy`` for ``evaluations`` expensive evaluations (or until a
    :class:`~hwnas.optimize.config.Termination`: a count, a wall-time budget, or both), writing the
    run folder ``run_dir``; returns a :class:`~hwnas.optimize.result.SearchResult`. ``executor`` says
    where expensive evaluations run (it does not change the trace). Raises SearchError (ConfigError
    for a setting out of range) and LockedError when another process writes ``run_dir``."""
    config = RunConfig.of(problem, strategy=strategy, strategy_options=strategy_options, evaluations=evaluations,
                          seed=seed)
    return run_search(config, run_dir, progress=progress, executor=executor, log=say)


def resume(run_dir: PathLike, *, evaluations: int | None = None, executor: str | None = None,
           progress: bool = False, log: Callable[[str], None] = say,
           changes: Mapping[str, Any] | None = None) -> SearchResult:
    """Continue the search stored in ``run_dir``; ``evaluations`` extends (or shortens) it, and any
    of ``changes`` (setting -> value) that differs from the stored run is refused (ConfigError)."""
    asked = dict(changes or {})
    if evaluations is not None:
        asked["evaluations"] = evaluations
    return run_search(asked, run_dir, resume=True, progress=progress, executor=executor, log=log)
