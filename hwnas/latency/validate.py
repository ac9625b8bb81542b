"""Check a table: predict random whole models, measure them end to end, report the error.

The models are sampled with their own seed (never the table's context models), measured with the
table's own protocol and statistic on the same pinned cores, and compared with the prediction.
The report gives MAPE, the share within +-10% and Spearman's rho for the table's predictor, and
for the raw sum of isolated blocks beside it (the alternative the boundary correction replaces).

``calibrate=True`` then fits ``measured ~ scale * predicted + offset`` (relative least squares)
on these models and stores it in the table. The metrics after calibration are in-sample: validate
again with another seed to see its held-out effect.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import spearmanr

from hwnas.core.log import say
from hwnas.core.processes import scratch_folder
from hwnas.core.errors import UsageError
from hwnas.core.files import write_json
from hwnas.core.plots import add_legend, new_axes, save_figure
from hwnas.core.threads import torch_threads
from hwnas.device.spec import DeviceSpec, spec_from_record
from hwnas.device.connect import open_target
from hwnas.latency.drift import Drift, Sentinel, choose_sentinels, drift_factor
from hwnas.latency.measurement import Job, export_job, measure_files
from hwnas.latency.predictor import Predictor
from hwnas.latency.records import TableCalibration
from hwnas.latency.table import LatencyTable, open_table
from hwnas.measure.timing import Protocol, Stats
from hwnas.spaces.architecture import Architecture
from hwnas.spaces.base import SearchSpace


def _metrics(pred: np.ndarray, measured: np.ndarray) -> dict[str, float]:
    rel = pred / measured - 1
    rho = spearmanr(pred, measured).statistic if len(pred) > 2 else float("nan")
    return {"mape": float(np.mean(np.abs(rel))), "within_10": float(np.mean(np.abs(rel) <= 0.10)),
            "within_5": float(np.mean(np.abs(rel) <= 0.05)), "max_abs_err": float(np.max(np.abs(rel))),
            "spearman_rho": float(rho)}


def _fit_calibration(pred: np.ndarray, measured: np.ndarray) -> tuple[float, float]:
    A = np.stack([pred, np.ones_like(pred)], 1) / measured[:, None]
    scale, offset = np.linalg.lstsq(A, np.ones_like(pred), rcond=None)[0]
    return float(scale), float(offset)


def validate(
    table_path: str | Path,
    *,
    samples: int = 50,
    seed: int = 0,
    calibrate: bool = False,
    spec: DeviceSpec | None = None,
    allow_mismatch: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = say,
) -> dict[str, Any]:
    """Validate (and optionally calibrate) a table: time ``samples`` random models of its space on
    its device (or on ``spec``, which must be the same device) beside sentinels, compare them with
    the predictions, and write ``<table>.validation.json`` and ``.png``; returns the report.
    Raises UsageError for fewer than 3 samples, TableMismatchError for another device."""
    if samples < 3:  # a rank correlation and a calibration fit need three models
        raise UsageError(f"--samples must be at least 3, got {samples}")
    table, space, accepted = open_table(table_path, allow_mismatch=allow_mismatch)
    given, spec = spec is not None, spec or spec_from_record(table.device)
    protocol = table.protocol
    target = open_target(spec)
    if given:  # another spec measures: it must be the device (and precision) the table describes
        accepted += table.check(fingerprint=target.fingerprint(), allow_mismatch=allow_mismatch)
    state, warnings = target.preflight()
    for line in warnings:
        log(f"warning: {line}")
    rng = np.random.default_rng(seed)
    archs = space.sample(rng, samples)
    predicted = Predictor(table, space).predict(archs).latency_ms
    raw = Predictor(table, space, context=False, calibrated=False).predict(archs).latency_ms
    uncalibrated = Predictor(table, space, calibrated=False).predict(archs).latency_ms

    sentinels = choose_sentinels(table, space)
    jobs = [Job("model", a.string, arch=a) for a in archs] + [s.job for s in sentinels]  # timed interleaved
    all_stats = _time_jobs(jobs, space, spec, target, protocol, seed=seed, progress=progress)
    stats, sentinel_stats = all_stats[:samples], all_stats[samples:]
    measured = np.array([s.value(table.statistic) for s in stats])
    drift = drift_factor([s.table_ms for s in sentinels], [s.value(table.statistic) for s in sentinel_stats],
                         [s.job.kind == "model" for s in sentinels])

    compared = _Compared(measured, predicted, uncalibrated, raw)
    report = _report(table, archs, stats, compared, drift, sentinels,
                     {"seed": seed, "accepted_mismatches": accepted, "conditions": {**state, "preflight": warnings}})
    if calibrate:
        scale, offset = _fit_calibration(uncalibrated, measured)
        table.calibration = TableCalibration(scale, offset, samples, seed, "hwnas validate --calibrate")
        table.save()
        report["calibration"] = {**table.calibration.to_dict(),
                                 "in_sample": _metrics(scale * uncalibrated + offset, measured)}
    stem = Path(str(table.path)).with_suffix("")
    out_json = stem.parent / f"{stem.name}.validation.json"
    write_json(out_json, report)
    report["report_path"] = str(out_json)
    report["plot_path"] = str(_scatter(stem.parent / f"{stem.name}.validation.png", predicted, raw, measured, table.statistic))
    return report


def _time_jobs(jobs: list[Job], space: SearchSpace, spec: DeviceSpec, target: Any, protocol: Protocol, *, seed: int,
               progress: bool) -> list[Stats]:
    """Export every job's model to a scratch folder and time them all, interleaved, on the target."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with scratch_folder("validate") as tmp, Progress(
        TextColumn("[bold]validate"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), disable=not progress
    ) as bar:
        task = bar.add_task("export", total=2 * len(jobs))
        items = []
        with torch_threads(1):  # see hwnas.core.threads.torch_threads
            for job in jobs:
                items.append(export_job(job, space, spec, Path(tmp), seed))
                bar.advance(task)
        all_stats, _ = measure_files(spec, protocol, items, seed=seed, on_done=lambda _i, _s: bar.advance(task),
                                     target=target)
    return all_stats


@dataclass(frozen=True)
class _Compared:
    """Per sampled model: measured latency, and the prediction with and without its corrections."""

    measured: np.ndarray
    predicted: np.ndarray  # the predictor as a search sees it
    uncalibrated: np.ndarray  # without the table's calibration
    raw: np.ndarray  # the sum of isolated blocks


def _report(table: LatencyTable, archs: list[Architecture], stats: list[Stats], c: _Compared, drift: Drift,
            sentinels: list[Sentinel], run: dict[str, Any]) -> dict[str, Any]:
    """validation.json: the errors raw and drift-corrected, the drift, what stayed unstable.
    ``run`` holds the seed, the accepted mismatches and the device's conditions."""
    samples, conditions = len(archs), run["conditions"]
    measured, predicted, uncalibrated, raw = c.measured, c.predicted, c.uncalibrated, c.raw
    tol = table.protocol.sweep_tol
    changed_entries, changed_models = table.unconfirmed()
    report: dict[str, Any] = {
        "table": str(table.path), "statistic": table.statistic, "samples": samples, "seed": run["seed"],
        "accepted_mismatches": run["accepted_mismatches"], "unstable_measurements": int(sum(not s.stable for s in stats)),
        "unstable_models": [a.string for a, s in zip(archs, stats) if not s.stable],
        "unstable_table_entries": sorted(k for k, e in table.entries.items() if not e.stable),
        "unconfirmed_models": [a.string for a, s in zip(archs, stats) if s.sweep_spread > tol],  # sweeps disagreed
        "unconfirmed_table_entries": changed_entries, "unconfirmed_context_models": changed_models,
        "conditions": conditions, "preflight": conditions["preflight"], "table_conditions": table.conditions,
        "drift": {**drift.to_dict(), "sentinels": [s.job.key for s in sentinels],
                  "warning": drift.warning()},
        "predictor": _metrics(predicted, measured),
        "drift_corrected": _metrics(predicted * drift.at(predicted), measured),
        "without_calibration": _metrics(uncalibrated, measured),
        "raw_block_sum": _metrics(raw, measured),
        "models": [{"arch": a.string, "predicted_ms": float(p), "measured_ms": float(m), "raw_sum_ms": float(r),
                    "drift_corrected_ms": float(p * f), "stable": bool(s.stable)}
                   for a, p, m, r, s, f in zip(archs, predicted, measured, raw, stats, drift.at(predicted))],
    }
    return report


def _scatter(path: Path, predicted: np.ndarray, raw: np.ndarray, measured: np.ndarray, statistic: str) -> Path:
    fig, ax = new_axes(5, 5)
    lo, hi = 0.9 * min(measured.min(), predicted.min()), 1.1 * max(measured.max(), predicted.max(), raw.max())
    ax.plot([lo, hi], [lo, hi], "k-", lw=1, label="exact")
    ax.fill_between([lo, hi], [lo * 0.9, hi * 0.9], [lo * 1.1, hi * 1.1], color="0.9", label="±10%")
    ax.scatter(measured, raw, s=14, marker="x", color="tab:gray", label="sum of isolated blocks")
    ax.scatter(measured, predicted, s=16, color="tab:blue", label="hwnas predictor")
    ax.set_xlabel(f"measured latency, {statistic} (ms)")
    ax.set_ylabel("predicted latency (ms)")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    add_legend(ax, loc="upper left", fontsize=8)
    save_figure(fig, path)
    return path
