"""Profile a device: time every block of a space in onnxruntime and write a latency table.

Every catalog block and a set of whole context models are exported, converted to the device's
precision and timed with the device's protocol, in one interleaved run with the drift sentinels;
the boundary correction is fitted on the context models. Finished entries are saved as they come,
so an interrupted profile continues where it stopped (only with the same device, settings,
protocol and space version). Raises TableMismatchError or LockedError.

How it works, and why: ``docs/design.md`` (hwnas.latency.profiler).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from hwnas.core.log import say
from hwnas.core.processes import scratch_folder
from hwnas.core.errors import HwnasError, UsageError
from hwnas.core.locks import exclusive
from hwnas.core.threads import torch_threads
from hwnas.core.versions import __version__
from hwnas.device.energy import ENERGY_MODEL, estimate_energy_mj, open_meter
from hwnas.device.spec import DeviceSpec
from hwnas.device.target import Target
from hwnas.device.connect import open_target
from hwnas.latency.correction import fit_context
from hwnas.latency.measurement import Job, export_job, measure_files
from hwnas.latency.records import ContextModel, TableContext, TableEnergy, TableEntry
from hwnas.latency.table import LatencyTable, TableMismatchError, default_table_path, space_record
from hwnas.measure.timing import Protocol, Stats
from hwnas.spaces.base import Block, SearchSpace
from hwnas.models.quantize import Calibration, calibration_for


def _entry_record(block: Block, stats: dict[str, Any], statistic: str) -> TableEntry:
    return TableEntry(block.kind, list(block.in_shape), list(block.out_shape), block.n_inputs,
                      stats[f"{statistic}_ms"], stats)


def _plan_context(space: SearchSpace, n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    seen: dict[str, str] = {}
    for _ in range(50):
        for arch in space.sample(rng, n):
            seen.setdefault(arch.id, arch.string)
            if len(seen) == n:
                return list(seen.values())
    return list(seen.values())


@dataclass(frozen=True)
class ProfileSettings:
    """How a table is profiled: the protocol (default: the device spec's), the whole models timed
    beside the blocks for the boundary fit (default by precision, at least 3), their seed, an
    estimated energy model for a device without a meter, a fresh start, and how often a partial
    table is saved."""

    protocol: Protocol | None = None
    context_models: int | None = None
    seed: int = 0
    energy_model: bool = False
    force: bool = False  # re-profile from scratch instead of reusing or continuing the table
    save_every_s: float = 2.0


def profile(spec: DeviceSpec, space: SearchSpace, out: str | Path | None = None,
            settings: ProfileSettings = ProfileSettings(), *, progress: bool = True,
            log: Callable[[str], None] = say) -> LatencyTable:
    """Profile ``space`` on ``spec``'s device into a table at ``out`` (see the module docstring).

    Raises UsageError for fewer than 3 context models, TableMismatchError to continue a table made
    elsewhere, DeviceSpecError or ProviderUnavailableError for a bad spec, and EnergyMeterError
    for an unreadable meter.
    """
    context_models = settings.context_models
    if context_models is None:
        context_models = default_context_models(spec.runtime.precision)
    if context_models < 3:  # checked before any block is measured: the fit needs three models
        raise UsageError(f"--context-models must be at least 3 (the boundary fit needs them), got {context_models}")
    settings = dataclasses.replace(settings, protocol=settings.protocol or spec.protocol, context_models=context_models)
    path = Path(out) if out else default_table_path(spec.name, space, precision=spec.runtime.precision)
    # one profile at a time writes into a table folder (and times the device)
    with exclusive(path.parent, f"latency table {path} (its folder)"):
        return _profile(spec, space, path, settings, progress, log)


def cached_table(spec: DeviceSpec, space: SearchSpace, *, progress: bool = True,
                 log: Callable[[str], None] = say) -> LatencyTable:
    """The device's table for ``space``, profiled now unless a complete one made on this machine
    with these settings is at its default path (an incomplete one is continued). A table there from
    another machine is left alone: this machine's goes beside it, under ``<device>@<fingerprint>``."""
    import hashlib
    import json

    path = default_table_path(spec.name, space, precision=spec.runtime.precision)
    if not path.is_file():
        log(f"no table of {spec.name} for {space!r} yet: profiling it into {path} (minutes; reused by later searches)")
    try:
        return profile(spec, space, path, progress=progress, log=log)
    except TableMismatchError:
        digest = hashlib.sha256(json.dumps(open_target(spec).fingerprint(), sort_keys=True, default=str).encode())
        mine = path.parent.with_name(f"{path.parent.name}@{digest.hexdigest()[:8]}") / path.name
        log(f"{path} was made on another machine or with other settings; this machine's table is {mine}")
        return profile(spec, space, mine, progress=progress, log=log)


# Whole models timed beside the blocks for the boundary fit. INT8 models have a quantize/dequantize
# pair at every block boundary, more terms for the fit to learn: with 40, mobilenet at 3x32x32
# fitted to a leave-one-out MAPE of 13% and validated at 37% within 10%; with 80, 0.8% and 100%.
CONTEXT_MODELS = {"fp32": 40, "fp16": 40, "int8": 80}


def default_context_models(precision: str) -> int:
    return CONTEXT_MODELS.get(precision, 40)


def quantization_record(spec: DeviceSpec, space: SearchSpace, seed: int) -> dict[str, Any] | None:
    """What a table of a non-fp32 device says about its files' conversion (None for fp32)."""
    precision = spec.runtime.precision
    if precision == "fp32":
        return None
    if precision == "fp16":
        return {"precision": "fp16", "converter": "onnxruntime.transformers.float16", "io": "fp32"}
    return {"precision": "int8", "method": "onnxruntime.quantization.quantize_static", "format": "QDQ",
            "weights": "int8, per channel", "activations": "uint8, MinMax ranges",
            "calibration": {"blocks": Calibration.random(seed).describe(),
                            "models": calibration_for(spec.runtime.calibration_data, space, seed).describe()}}


def _profile(spec: DeviceSpec, space: SearchSpace, path: Path, settings: ProfileSettings, progress: bool,
             log: Callable[[str], None]) -> LatencyTable:
    target = open_target(spec)  # one for the whole profile: a remote one is probed once
    target.check_provider()
    protocol, seed, context_models = settings.protocol or spec.protocol, settings.seed, settings.context_models or 0
    fp = target.fingerprint()
    meter = open_meter(spec) if spec.remote is None else None  # an unreadable meter fails now; a remote one is read there
    has_meter = spec.energy.meter != "none"
    if has_meter and settings.energy_model:
        raise HwnasError(f"{spec.source}: the device has an energy meter ({spec.energy.meter}); --energy-model is only for meter 'none'")

    table = _existing_table(path, fp, space, protocol, settings.force, log)
    if table is not None and table.complete:
        return table
    if table is None:
        table = LatencyTable(fingerprint=fp, device=spec.to_dict(), space=space_record(space),
                             protocol=protocol, statistic=protocol.statistic, hwnas_version=__version__, path=path)
        table.context = TableContext(seed=seed, planned=_plan_context(space, context_models, seed))
        table.quantization = quantization_record(spec, space, seed)
    state, warnings = target.preflight()
    for line in warnings:
        log(f"warning: {line}")
    table.conditions = {**state, "preflight": warnings}  # a continued profile records its latest start
    if has_meter:
        source = meter.source if meter else f"{spec.energy.meter}@{spec.remote.connection if spec.remote else ''}"
        table.energy = TableEnergy(True, source, False, "window energy / inferences, idle power included")

    def finished(record: TableEntry | ContextModel | None) -> bool:
        return record is not None and (not has_meter or record.energy_mj is not None)

    done_models = {m.arch for m in table.context.models if finished(m)}
    blocks = [Job("block", b.key, block=b) for b in space.catalog() if not finished(table.entries.get(b.key))]
    models = [Job("model", a, arch=space.parse(a)) for a in table.context.planned if a not in done_models]
    jobs: list[Job] = blocks + models  # measured together, interleaved: both meet the same machine

    started = time.perf_counter()
    with torch_threads(1):
        _run_jobs(jobs, table, path, space, target, settings, has_meter, progress)
    if settings.energy_model:
        _estimate_energy(space, table)
    table.context.fit = fit_context(space, table)
    table.complete = True
    table.save(path)
    unstable = [k for k, e in table.entries.items() if not e.stable]
    if unstable:
        log(f"warning: {len(unstable)} entries stayed unstable after re-measurement (kept, flagged 'stable: false'), "
            f"e.g. {unstable[0]}")
    entries, models = table.unconfirmed()
    if entries or models:
        log(f"warning: {len(entries)} of {len(table.entries)} entries and {len(models)} of {len(table.context.models)} "
            f"context models still differed by more than {protocol.sweep_tol:.0%} between their two fastest sweeps: "
            "the device changed while it was profiled (other work, heat); the table may not hold: re-profile "
            "(--force) when `hwnas doctor` finds the device quiet")
    log(f"wrote {path}: {len(table.entries)} entries, {len(table.context.models)} context models, "
        f"{time.perf_counter() - started:.0f} s")
    return table


def _existing_table(path: Path, fp: dict[str, Any], space: SearchSpace, protocol: Protocol, force: bool,
                    log: Callable[[str], None]) -> LatencyTable | None:
    """The table at ``path`` to continue (None: start afresh); raises TableMismatchError when it
    was made on another device, with other settings or another protocol."""
    if not path.exists() or force:
        return None
    table = LatencyTable.load(path)
    diffs = table.mismatches(fingerprint=fp, space=space)
    stored = {k: v for k, v in table.protocol.to_dict().items() if k not in table.unrecorded_protocol}
    diffs += [f"protocol.{k}: table {stored.get(k, 'not recorded')!r}, now {v!r}"
              for k, v in protocol.to_dict().items() if stored.get(k, object()) != v]
    if diffs:
        raise TableMismatchError(f"{path} cannot be continued with this device and settings: " + "; ".join(diffs)
                                 + " (use --force to re-profile from scratch, or another --out)")
    if table.complete:
        log(f"{path} is complete and was made on this device with these settings: nothing to do (--force re-profiles)")
    else:
        log(f"continuing {path}: {len(table.entries)} entries already measured")
    return table


def _run_jobs(jobs: list[Job], table: LatencyTable, path: Path, space: SearchSpace, target: Target,
              settings: ProfileSettings, has_meter: bool, progress: bool) -> None:
    spec, seed, save_every_s = target.spec, settings.seed, settings.save_every_s
    protocol = settings.protocol or spec.protocol
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    model_index = {m.arch: i for i, m in enumerate(table.context.models)}

    def record(job: Job, stats: dict[str, Any], energy: float | None) -> None:
        if job.kind == "block":
            assert job.block is not None
            entry = _entry_record(job.block, stats, protocol.statistic)
            entry.energy_mj = energy
            table.entries[job.key] = entry
        else:
            row = ContextModel(job.key, stats, energy)
            if job.key in model_index:
                table.context.models[model_index[job.key]] = row
            else:
                model_index[job.key] = len(table.context.models)
                table.context.models.append(row)

    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("elapsed"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn()]
    what = f"{space.name} {'x'.join(map(str, space.input_shape))} on {spec.name}"
    with Progress(*columns, disable=not progress) as bar, scratch_folder("profile") as tmp:
        exporting = bar.add_task(f"export  {what}", total=len(jobs))
        items = []
        for job in jobs:
            items.append(export_job(job, space, spec, Path(tmp), seed))
            bar.advance(exporting)
        measuring = bar.add_task(f"measure {what}", total=len(jobs))
        last_save = [time.monotonic()]

        def done(i: int, stats: Stats) -> None:
            bar.advance(measuring)
            if not has_meter:  # with a meter, an entry is finished only once its energy is read
                record(jobs[i], stats.to_dict(), None)
                if time.monotonic() - last_save[0] >= save_every_s:
                    table.save(path)
                    last_save[0] = time.monotonic()

        def finished(indices: list[int], stats: list[Stats], energy: list[float | None]) -> None:
            for i, s, e in zip(indices, stats, energy):
                record(jobs[i], s.to_dict(), e)
            if spec.remote is not None:
                bar.advance(measuring, len(indices))
            table.save(path)  # a batch is safe once it is here

        measure_files(spec, protocol, items, seed=seed, on_done=done, on_batch=finished, target=target)
        table.save(path)


def _estimate_energy(space: SearchSpace, table: LatencyTable) -> None:
    """Label every entry with an estimated energy from its MACs and memory traffic."""
    from hwnas.spaces.facts import block_facts

    for block in space.catalog():
        params, macs = block_facts(space, block)
        bytes_moved = 4 * (params + int(np.prod(block.in_shape)) * block.n_inputs + int(np.prod(block.out_shape)))
        table.entries[block.key].energy_mj = estimate_energy_mj(macs, bytes_moved)
    table.energy = TableEnergy(True, f"estimated:{ENERGY_MODEL['name']}", True, model=dict(ENERGY_MODEL))
