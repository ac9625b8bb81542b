"""The Python API: the three jobs in three calls, each taking names or paths as the command line
does, returning typed results, logging (the ``hwnas`` logger) and never printing.

    import hwnas

    table = hwnas.profile("local-cpu", hwnas.get_space("dppnet", input_shape="1x8x8"))
    problem = hwnas.Problem.build("dppnet", "accuracy-latency", input_shape="1x8x8", budgets=["latency_ms<=0.05"],
                                  sources=hwnas.Sources(table=table.path, accuracy="train",
                                                        accuracy_options={"dataset": "digits"}))
    result = hwnas.search(problem, "runs/quick", evaluations=20)
    result.to_pandas()                       # the front, one row per member
    exported = hwnas.export("runs/quick", "models", hwnas.ExportSettings(retrain=True, epochs=5, limit=2))
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hwnas.core.errors import HwnasError
from hwnas.device.spec import DeviceSpec, load_device, with_runtime
from hwnas.latency.profiler import ProfileSettings
from hwnas.latency.profiler import profile as _profile
from hwnas.latency.table import LatencyTable
from hwnas.core.options import Scalar
from hwnas.deploy.export import ExportSettings
from hwnas.optimize.config import Termination
from hwnas.optimize.minimize import minimize
from hwnas.optimize.minimize import resume as resume_run
from hwnas.optimize.problem import Problem
from hwnas.optimize.result import SearchResult
from hwnas.spaces import SearchSpace, get_space

__all__ = ["ExportResult", "ExportSettings", "export", "profile", "resume", "search"]

PathLike = str | os.PathLike[str]


def profile(device: PathLike | DeviceSpec, space: str | SearchSpace, *, out: PathLike | None = None,
            precision: str | None = None, context_models: int | None = None, seed: int = 0, force: bool = False,
            progress: bool = False) -> LatencyTable:
    """Time every block of ``space`` on ``device`` into a latency table, and return it.

    :param device: a preset name (``"local-cpu"``; ``hwnas devices`` lists them), a spec file, or
        a :class:`~hwnas.device.spec.DeviceSpec` (``with_runtime(spec, calibration_data=...)`` names
        the dataset that calibrates int8 whole models).
    :param space: a built space (``hwnas.get_space("dppnet", input_shape="1x8x8")``) or a name,
        built with its defaults (input 3x32x32, 10 classes).
    :param out: the table's path (default ``latency_tables/<device>/<space>...-<CxHxW>[-int8].json``).
    :param precision: override the spec's ``fp32``/``int8``/``fp16``.
    :param context_models: whole models timed beside the blocks, to fit the boundary correction (>= 3;
        default 40, 80 for int8, whose quantize/dequantize boundaries need more).
    :param force: re-profile from scratch; otherwise a matching, complete table is reused and an
        incomplete one continued.
    :raises DeviceSpecError: a malformed spec. :raises TableMismatchError: ``out`` holds a table of
        another device or setting. :raises LockedError: another process profiles the same table.
    """
    spec = device if isinstance(device, DeviceSpec) else load_device(device)
    spec = with_runtime(spec, precision=precision)
    if isinstance(space, str):
        space = get_space(space)
    return _profile(spec, space, out=out, progress=progress,
                    settings=ProfileSettings(context_models=context_models, seed=seed, force=force))


def search(problem: Problem, run_dir: PathLike, *, strategy: str = "bo", evaluations: int | Termination = 100,
           seed: int = 0, strategy_options: Mapping[str, Scalar] | None = None, executor: str | None = None,
           progress: bool = False) -> SearchResult:
    """Search ``problem`` for its Pareto front, writing the run folder ``run_dir`` (archive, front,
    history); see :class:`~hwnas.optimize.result.SearchResult` for what comes back.

    :param problem: what to optimise: ``Problem.build(space, objectives, budgets=..., sources=...)``.
    :param strategy: ``bo`` (default), ``nsga2``, ``rl``, ``evolution``, ``progressive`` or ``random``,
        with ``strategy_options`` such as ``{"batch": 4}`` (``hwnas search --help`` lists them).
    :param evaluations: expensive evaluations (trainings) to spend, or ``hwnas.Termination(evaluations=N,
        seconds=T)``: stop once the next evaluation would end past T seconds of wall time (over every
        resume); ``seed`` decides the whole trace.
    :param executor: ``local`` (default), ``processes:N``, ``dask-local:N`` or ``dask://HOST:PORT``;
        it does not change the trace.
    :raises SearchError: a search that cannot be set up (its subclass ``ConfigError``: a setting out
        of range). :raises LockedError: another process writes ``run_dir``.
    """
    return minimize(problem, strategy, evaluations=evaluations, run_dir=run_dir, seed=seed,
                    strategy_options=strategy_options, executor=executor, progress=progress)


def resume(run_dir: PathLike, *, evaluations: int | None = None, executor: str | None = None,
           progress: bool = False) -> SearchResult:
    """Continue the search stored in ``run_dir`` with the settings it was started with; finished
    evaluations are replayed, not redone. ``evaluations`` extends (or shortens) it.

    :raises SearchError: no search in ``run_dir``, or fewer evaluations than it has spent.
    """
    return resume_run(run_dir, evaluations=evaluations, executor=executor, progress=progress)


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export` wrote: the folder, its ``index.json`` (as a dict), and each model card."""

    out: Path
    index: dict[str, Any]
    cards: list[dict[str, Any]]

    @property
    def over_budget(self) -> list[str]:
        return list(self.index["over_budget"])

    def to_pandas(self) -> Any:
        """The exported models as a ``pandas.DataFrame`` (the rows of ``index.json``); needs pandas."""
        try:
            import pandas as pd
        except ImportError:
            raise HwnasError("ExportResult.to_pandas needs pandas: pip install pandas") from None

        return pd.DataFrame(self.index["models"])


def export(run_dir: PathLike, out: PathLike, settings: ExportSettings | None = None, *,
           device: PathLike | DeviceSpec | None = None, progress: bool = False) -> ExportResult:
    """Export a search's front as verified ONNX files with model cards, re-measured on the device.

    :param settings: which members and how (:class:`~hwnas.deploy.export.ExportSettings`: retrain,
        epochs, limit, budgets, int8, seed, threads); default: every member, untrained.
    :param device: where to measure (default: the device of the run's latency table).
    :raises RunDirError: no search in ``run_dir``. :raises ExportError: a model fails its checks.
    """
    from hwnas.core.files import read_json
    from hwnas.deploy.export import export_front

    index = export_front(run_dir, out, settings or ExportSettings(), device=device,
                         argv=["hwnas.export", os.fspath(run_dir)], progress=progress)
    folder = Path(out)
    cards = [read_json(folder / m["card_json"]) for m in index["models"]]
    return ExportResult(folder, index, cards)
