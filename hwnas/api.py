"""The Python API: the three jobs in three calls, each taking names or paths as the command line
does, returning typed results, logging (the ``hwnas`` logger) and never printing.

    import hwnas

    table = hwnas.profile("local-cpu", "dppnet", input_shape="1x8x8")
    result = hwnas.search(space="dppnet", input_shape="1x8x8", objectives="accuracy-latency",
                          table=table.path, budgets=["latency_ms<=0.05"], accuracy="train",
                          accuracy_options={"dataset": "digits"}, evaluations=20, run_dir="runs/quick")
    result.to_pandas()                       # the front, one row per member
    exported = hwnas.export("runs/quick", "models", retrain=True, epochs=5, limit=2)
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hwnas.core.errors import HwnasError
from hwnas.device.spec import DeviceSpec, load_device, with_runtime
from hwnas.latency.profiler import profile as _profile
from hwnas.latency.table import LatencyTable
from hwnas.search.api import search
from hwnas.spaces import SearchSpace, get_space

__all__ = ["ExportResult", "export", "profile", "search"]

PathLike = str | os.PathLike[str]


def profile(device: PathLike | DeviceSpec, space: str | SearchSpace, *, input_shape: str = "3x32x32",
            num_classes: int = 10, space_options: Mapping[str, float] | None = None, out: PathLike | None = None,
            precision: str | None = None, calibration_data: str | None = None, context_models: int | None = None,
            seed: int = 0, force: bool = False, progress: bool = False) -> LatencyTable:
    """Time every block of ``space`` on ``device`` into a latency table, and return it.

    :param device: a preset name (``"local-cpu"``; ``hwnas devices`` lists them), a spec file, or
        a :class:`~hwnas.device.spec.DeviceSpec`.
    :param space: a space name (``"mobilenet"``, ``"nb201"``, ``"dppnet"``) or a built space; with a
        name, ``input_shape``, ``num_classes`` and ``space_options`` build it.
    :param out: the table's path (default ``latency_tables/<device>/<space>...-<CxHxW>[-int8].json``).
    :param precision: override the spec's ``fp32``/``int8``/``fp16``; ``calibration_data`` names the
        dataset whose train split calibrates int8 whole models.
    :param context_models: whole models timed beside the blocks, to fit the boundary correction (>= 3;
        default 40, 80 for int8, whose quantize/dequantize boundaries need more).
    :param force: re-profile from scratch; otherwise a matching, complete table is reused and an
        incomplete one continued.
    :raises DeviceSpecError: a malformed spec. :raises TableMismatchError: ``out`` holds a table of
        another device or setting. :raises LockedError: another process profiles the same table.
    """
    spec = device if isinstance(device, DeviceSpec) else load_device(device)
    spec = with_runtime(spec, precision=precision, calibration_data=calibration_data)
    if isinstance(space, str):
        space = get_space(space, input_shape=input_shape, num_classes=num_classes, **dict(space_options or {}))
    return _profile(spec, space, out=out, context_models=context_models, seed=seed, force=force, progress=progress)


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


def export(run_dir: PathLike, out: PathLike, *, device: PathLike | DeviceSpec | None = None, retrain: bool = False,
           epochs: int = 15, limit: int | None = None, int8: bool = False, budgets: Sequence[str] = (), seed: int = 0,
           threads: int | None = None, progress: bool = False) -> ExportResult:
    """Export a search's front as verified ONNX files with model cards, re-measured on the device.

    :param device: where to measure (default: the device of the run's latency table).
    :param retrain: retrain each member from scratch for ``epochs`` first (else the files carry
        seeded initial weights, and the cards say so).
    :param limit: export only this many members, spread along the front.
    :param int8: also write each model statically quantized, measured and scored beside fp32
        (implied on a device whose precision is int8).
    :param budgets: extra budgets to check the measured models against.
    :raises RunDirError: no search in ``run_dir``. :raises ExportError: a model fails its checks.
    """
    from hwnas.deploy.export import export_front
    from hwnas.core.files import read_json

    index = export_front(run_dir, out, device=device, retrain=retrain, epochs=epochs, limit=limit, int8=int8,
                         budgets=budgets, seed=seed, threads=threads, argv=["hwnas.export", os.fspath(run_dir)],
                         progress=progress)
    folder = Path(out)
    cards = [read_json(folder / m["card_json"]) for m in index["models"]]
    return ExportResult(folder, index, cards)
