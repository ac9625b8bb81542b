"""Exporting chosen models: each written as a verified ONNX file (and its int8 version), timed
on the device interleaved with sentinels from its table, and described by a model card.
``hwnas.deploy.export`` chooses the models of a run's front and calls :func:`export_models`."""

from __future__ import annotations

import dataclasses
import hashlib
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from hwnas.core.files import output_folder, write_atomic, write_json
from hwnas.core.log import say
from hwnas.core.processes import scratch_folder
from hwnas.core.threads import torch_threads
from hwnas.core.versions import versions
from hwnas.deploy.cards import ModelCard, card_markdown
from hwnas.deploy.int8 import Int8Request, int8_line, int8_section, quantize_file
from hwnas.device.connect import open_target
from hwnas.device.spec import DeviceSpec
from hwnas.device.target import Target
from hwnas.latency.drift import Drift, Sentinel, choose_sentinels, drift_factor
from hwnas.latency.measurement import export_job, measure_files
from hwnas.latency.predictor import Predictor
from hwnas.latency.table import LatencyTable
from hwnas.measure.timing import Protocol, Stats
from hwnas.models.onnx_io import PARITY_ATOL, ExportReport, ParityCheck, export_onnx
from hwnas.optimize.objectives import Constraint
from hwnas.spaces.base import Architecture, SearchSpace
from hwnas.spaces.facts import describe

__all__ = ["ModelToExport", "Provenance", "export_models"]


@dataclass(frozen=True)
class ModelToExport:
    """One model to export: its architecture and file name, its weights (None: the space's seeded
    initial weights), its accuracy record (into the card as it is) and the search's values."""

    arch: Architecture
    name: str
    weights: dict[str, torch.Tensor] | None = None
    accuracy: Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Provenance:
    """What the cards record beside the models, and what the models are checked against: the
    table that predicted them, the budgets, the seeds and the command, and an int8 request."""

    table: LatencyTable | None = None
    constraints: Sequence[Constraint] = ()
    seeds: Mapping[str, Any] = field(default_factory=dict)
    command: str = ""
    seed: int = 0  # initial weights, example inputs and the measurement's order
    int8: Int8Request | None = None
    reference: Mapping[str, Any] | None = None  # the user's model the run's budget came from (timed beside them)


def _budget_checks(constraints: Sequence[Constraint], values: dict[str, tuple[float | None, str]]) -> dict[str, Any]:
    checks = []
    for c in constraints:
        value, source = values.get(c.name, (None, "unknown"))
        ok = None if value is None else c.met(value)
        # how much is left before the bound (negative: past it), in percent of the bound
        spare = None if value is None or not c.bound else 100.0 * (c.bound - value) / abs(c.bound) * (1 if "<" in c.op else -1)
        checks.append({"budget": c.text, "hard": c.hard, "value": value, "source": source, "ok": ok, "spare_pct": spare})
    broken = [ch["budget"] for ch in checks if ch["ok"] is False]
    return {"ok": not broken, "broken": broken, "checks": checks}


def _reference_file(b: _Batch) -> Path | None:
    """The run's reference model, when its file is still there unchanged (else it is not timed)."""
    ref = b.provenance.reference
    if not ref or not Path(ref["path"]).is_file():
        return None
    path = Path(ref["path"])
    return path if hashlib.sha256(path.read_bytes()).hexdigest() == ref.get("sha256") else None


def _against_reference(b: _Batch, measured_ms: float, accuracy: Mapping[str, Any]) -> dict[str, Any] | None:
    """The model against the user's reference: times faster (both timed in one pass) and points
    more accurate on the same test split, with a 95% interval (Newcombe's hybrid Wilson score)."""
    ref = b.provenance.reference
    if not ref:
        return None
    out: dict[str, Any] = {"path": ref["path"], "measured_ms": b.reference_ms,
                           "speedup": b.reference_ms / measured_ms if b.reference_ms and measured_ms else None}
    ref_acc, test = ref.get("accuracy"), accuracy.get("test")
    n = accuracy.get("test_images") or (ref_acc or {}).get("n")
    if ref_acc and test is not None and n:
        low, high = newcombe_interval(test / 100, n, ref_acc["accuracy"] / 100, ref_acc["n"])
        out.update(accuracy=ref_acc["accuracy"], accuracy_points=test - ref_acc["accuracy"],
                   accuracy_points_ci95=[100 * low, 100 * high], test_images=ref_acc["n"])
    return out


def newcombe_interval(p1: float, n1: int, p2: float, n2: int, z: float = 1.959964) -> tuple[float, float]:
    """95% interval of p1 - p2 for two proportions (Newcombe 1998, method 10: Wilson score limits)."""
    def wilson(p: float, n: int) -> tuple[float, float]:
        centre, half = (p + z * z / (2 * n)) / (1 + z * z / n), z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
        return centre - half, centre + half

    (l1, u1), (l2, u2) = wilson(p1, n1), wilson(p2, n2)
    d = p1 - p2
    return d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)


def _pct_error(predicted: float | None, measured: float | None) -> float | None:
    if predicted is None or measured is None or not measured:
        return None
    return 100.0 * (predicted / measured - 1.0)


@dataclass(frozen=True)
class _Batch:
    """What every card of one export shares."""

    space: SearchSpace
    spec: DeviceSpec
    provenance: Provenance
    protocol: Protocol
    atol: float
    fingerprint: dict[str, Any]
    created: str
    conditions: dict[str, Any]
    drift: Drift | None = None  # None: no table of this device to compare with
    reference_ms: float | None = None  # the reference model, timed in the same pass as the models

    @property
    def table(self) -> LatencyTable | None:
        return self.provenance.table

    @property
    def meter_source(self) -> str | None:
        e, remote = self.spec.energy, self.spec.remote
        return None if e.meter == "none" else (e.meter if remote is None else f"{e.meter}@{remote.connection}")


@dataclass(frozen=True)
class _Measured:
    """One model as exported and timed: the export's report, its statistics and energy."""

    report: ExportReport
    stats: Stats
    energy_mj: float | None


def export_models(space: SearchSpace, models: Sequence[ModelToExport], out: str | Path, spec: DeviceSpec,
                  provenance: Provenance = Provenance(), *, progress: bool = True,
                  log: Callable[[str], None] = say) -> list[ModelCard]:
    """Export, verify and measure ``models``; write their ONNX files and cards into ``out``. With
    ``provenance.int8``, each model is also written statically quantized and measured beside its
    fp32 file (``hwnas.deploy.int8``). Returns the cards. Raises ExportError for a model that
    fails its checks."""
    out = output_folder(out, "export folder")
    table = provenance.table
    same_device = table is not None and table.device.get("name") == spec.name
    archs = [m.arch for m in models]
    predicted = Predictor(table, space).predict(archs) if table is not None and archs else None
    target = open_target(spec)  # one for the whole export: a remote one is probed once
    b = _Batch(space, spec, provenance, table.protocol if same_device and table else spec.protocol,
               PARITY_ATOL if spec.runtime.provider == "CPUExecutionProvider" else 1e-3,  # GPU kernels reorder sums
               target.fingerprint(), time.strftime("%Y-%m-%dT%H:%M:%S%z"), _preflight(target, log))
    # sentinels re-time table entries beside the models: is the device still as profiled?
    sentinels = choose_sentinels(table, space) if same_device and table is not None else []
    measured, now, q_files, q_stats = _export_and_measure(b, models, out, target, sentinels, progress)
    if _reference_file(b) is not None:  # timed last in the same pass
        b = dataclasses.replace(b, reference_ms=now.pop())
    if sentinels:
        b = dataclasses.replace(b, drift=drift_factor([s.table_ms for s in sentinels], now,
                                                       [s.job.kind == "model" for s in sentinels]))
        if b.drift is not None and b.drift.warning():
            log(f"warning: {b.drift.warning()}")
    table_int8 = table is not None and table.precision == "int8"
    cards: list[ModelCard] = []
    for i, (model, m) in enumerate(zip(models, measured)):
        pred_ms = float(predicted.latency_ms[i]) if predicted is not None else None
        pred_mj = float(predicted.energy_mj[i]) if predicted is not None and predicted.energy_mj is not None else None
        section = None
        if provenance.int8 is not None:  # an int8 table predicts the int8 file, an fp32 table the fp32 one
            section = int8_section(Path(m.report.path), q_files[i], m.stats, q_stats[i], b.protocol, provenance.int8,
                                   trained=model.weights is not None, predicted_ms=pred_ms if table_int8 else None)
            pred_ms = None if table_int8 else pred_ms
        card = _card(b, model, m, (pred_ms, pred_mj), section)
        write_json(out / f"{model.name}.json", card)
        write_atomic(out / f"{model.name}.md", card_markdown(card))
        cards.append(card)
        log(_card_line(card, pred_ms, m.stats.stable))
        if section is not None:
            log(int8_line(model.name, section))
    return cards


def _preflight(target: Target, log: Callable[[str], None]) -> dict[str, Any]:
    """The device's state before measuring, with a warning line for each condition that spoils it."""
    state, warnings = target.preflight()
    for line in warnings:
        log(f"warning: {line}")
    return {**state, "preflight": warnings}


def _card_line(card: ModelCard, pred_ms: float | None, stable: bool) -> str:
    """One exported model in a line: measured against predicted latency, and the budget."""
    flag = "" if card["budget"]["ok"] else f"  BREAKS BUDGET {', '.join(card['budget']['broken'])}"
    lat = card["latency"]
    err, fixed, measured_ms = lat["error_pct"], lat["error_pct_drift_corrected"], lat["measured_ms"]
    return (f"{card['name']}: measured {measured_ms:.3f} ms, predicted "
            f"{'-' if pred_ms is None else f'{pred_ms:.3f} ms'}"
            f"{'' if err is None else f' ({err:+.1f}%'}{'' if fixed is None else f', drift-corrected {fixed:+.1f}%'}"
            f"{'' if err is None else ')'}{'' if stable else '  UNSTABLE measurement'}{flag}")


def _export_and_measure(b: _Batch, models: Sequence[ModelToExport], out: Path, target: Target,
                        sentinels: Sequence[Sentinel], progress: bool,
                        ) -> tuple[list[_Measured], list[float], list[Path], list[Stats]]:
    """Verified ONNX files of the models (and their int8 versions), then their statistics and
    energy on the target, all timed interleaved with the sentinels; returns the fp32 models as
    measured, the sentinels' statistic now, the int8 files and their stats."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    space, spec, seed, int8 = b.space, b.spec, b.provenance.seed, b.provenance.int8
    exports: list[ExportReport] = []
    q_files: list[Path] = []
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  disable=not progress) as bar:
        task = bar.add_task("export ", total=len(models))
        with torch_threads(1):
            for m in models:
                model = space.build(m.arch, seed=seed, calibrate_bn=m.weights is None)
                if m.weights is not None:
                    model.load_state_dict(m.weights)
                model = model.eval().to(memory_format=torch.contiguous_format)
                example = torch.randn((spec.batch_size, *space.input_shape), generator=torch.Generator().manual_seed(seed))
                parity = ParityCheck(seed=seed, atol=b.atol, providers=(spec.runtime.provider,))
                exports.append(export_onnx(model, example, out / f"{m.name}.onnx", dynamic_batch=False, parity=parity))
                if int8 is not None:
                    q_files.append(quantize_file(Path(exports[-1].path), int8, space.input_shape, spec.batch_size))
                bar.advance(task)
        meas = bar.add_task("measure", total=len(models) + len(q_files) + len(sentinels))
        items = [(Path(r.path), [space.input_shape]) for r in exports] + [(f, [space.input_shape]) for f in q_files]
        with scratch_folder("sentinels") as tmp, torch_threads(1):
            items += [export_job(s.job, space, spec, Path(tmp), seed) for s in sentinels]
            reference = _reference_file(b)
            if reference is not None:
                items.append((reference, [space.input_shape]))
            # the device's own sessions (local, or on its remote target), the profiling protocol
            stats, energy = measure_files(spec, b.protocol, items, seed=seed, on_done=lambda _i, _s: bar.advance(meas),
                                          target=target)
    n, k = len(exports), len(exports) + len(q_files)
    measured = [_Measured(r, st, e) for r, st, e in zip(exports, stats[:n], energy[:n])]
    return measured, [st.value(b.protocol.statistic) for st in stats[k:]], q_files, stats[n:k]


def _memory(path: Path, precision: str, spec: DeviceSpec, input_shape: Sequence[int]) -> dict[str, Any]:
    """Peak activation memory (onnxruntime's allocation plan at the device's graph optimization
    level, ``hwnas.evaluation.memory``) and weights of an exported fp32 file, at ``precision``."""
    import onnx

    from hwnas.evaluation.memory import planned_peak_of
    from hwnas.models.memory import graph_memory

    model = onnx.load(str(path))
    peak = planned_peak_of(model, precision, spec.runtime, input_shape)
    return {"peak_memory_kb": peak / 1024, "model_kb": graph_memory(model, precision).model_kb, "precision": precision,
            "method": f"onnxruntime's allocation plan (graph optimization {spec.runtime.graph_optimization})"}


def _card(b: _Batch, model: ModelToExport, m: _Measured, predicted: tuple[float | None, float | None],
          int8: dict[str, Any] | None = None) -> ModelCard:
    """A model card: what was exported, how it was checked, and what it costs and scores."""
    arch, name, rep, st, meas_mj, metrics = model.arch, model.name, m.report, m.stats, m.energy_mj, model.metrics
    pred_ms, pred_mj = predicted
    facts = describe(b.space, arch)
    measured_ms = st.value(b.protocol.statistic)
    precision = "int8" if int8 is not None and b.spec.runtime.precision == "int8" else "fp32"
    known = {k: (float(v), "search") for k, v in metrics.items() if isinstance(v, (int, float)) and v is not None}
    known.update({"latency_ms": (int8["latency"]["measured_ms"] if precision == "int8" and int8 else measured_ms,
                                 "measured" if precision == "fp32" else "measured (int8)"),
                  "params": (float(facts.params), "counted"), "macs": (float(facts.macs), "counted")})
    memory = _memory(Path(rep.path), precision, b.spec, b.space.input_shape)
    known.update({k: (float(memory[k]), "exported graph") for k in ("peak_memory_kb", "model_kb")})
    if meas_mj is not None:
        known["energy_mj"] = (meas_mj, "measured")
    elif pred_mj is not None:
        known["energy_mj"] = (pred_mj, "predicted")
    table = b.table
    # a whole model is drift-corrected at its own predicted latency (hwnas.latency.drift.Drift.at)
    corrected_ms = pred_ms * float(b.drift.at(pred_ms)) if b.drift and pred_ms is not None else None
    return {
        "name": name, "arch": arch.string, "arch_id": arch.id, "canonical": arch.canonical,
        "space": {"name": b.space.name, "version": b.space.version, "config": b.space.config()},
        "input_shape": list(b.space.input_shape), "batch_size": b.spec.batch_size,
        "onnx": f"{name}.onnx", "onnx_sha256": hashlib.sha256(Path(rep.path).read_bytes()).hexdigest(),
        "file_size_bytes": Path(rep.path).stat().st_size, "precision": precision,
        "checks": {"onnx_checker": "passed", "onnxruntime_session": list(rep.providers),
                   "parity_max_abs_diff": rep.max_abs_diff, "parity_atol": b.atol, "parity_inputs": rep.n_parity_inputs,
                   "opset": rep.opset, "exporter": rep.exporter},
        "params": facts.params, "macs": facts.macs, "flops": 2 * facts.macs, "memory": memory,
        "accuracy": dict(model.accuracy),
        "latency": {"statistic": b.protocol.statistic, "predicted_ms": pred_ms, "measured_ms": measured_ms,
                    "error_pct": _pct_error(pred_ms, measured_ms),
                    "drift": b.drift.to_dict() if b.drift else None,
                    "drift_corrected_ms": corrected_ms,
                    "error_pct_drift_corrected": _pct_error(corrected_ms, measured_ms),
                    "stable": st.stable,
                    "predicted_from": str(table.path) if table is not None else None,
                    "predicted_for_device": table.device.get("name") if table is not None else None,
                    "measured_stats": st.to_dict(), "protocol": b.protocol.to_dict()},
        "energy": {"predicted_mj": pred_mj, "measured_mj": meas_mj, "error_pct": _pct_error(pred_mj, meas_mj),
                   "meter": b.meter_source,
                   "predicted_source": table.energy.source if table is not None else None},
        "budget": _budget_checks(b.provenance.constraints, known),
        "reference": _against_reference(b, measured_ms, model.accuracy),
        "int8": int8,
        "device": {"name": b.spec.name, "spec": b.spec.source, "fingerprint": b.fingerprint, "conditions": b.conditions},
        "seeds": {**b.provenance.seeds, "export": b.provenance.seed}, "versions": versions(), "command": b.provenance.command,
        "created": b.created,
    }
