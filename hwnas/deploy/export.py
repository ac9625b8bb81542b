"""``hwnas export RUN_DIR --out D``: the search's front as verified ONNX models with model cards,
re-measured on the device.

How it works, and why: ``docs/design.md`` (hwnas.deploy.export).
"""

from __future__ import annotations

import hashlib
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from hwnas.core.log import say
from hwnas.core.processes import scratch_folder
from hwnas.core.files import output_folder, write_atomic, write_json
from hwnas.core.errors import HwnasError
from hwnas.core.pareto import spread
from hwnas.core.threads import torch_threads
from hwnas.core.versions import versions
from hwnas.deploy.cards import CARD_FIELDS, ModelCard, card_markdown
from hwnas.deploy.int8 import Int8Request, int8_line, int8_request, int8_section, quantize_file
from hwnas.device.spec import DeviceSpec, load_device, spec_from_record
from hwnas.device.target import Target
from hwnas.device.connect import open_target
from hwnas.evaluation.supernet import load_weights
from hwnas.latency.drift import Drift, Sentinel, choose_sentinels, drift_factor
from hwnas.latency.measurement import export_job, measure_files
from hwnas.latency.predictor import Predictor
from hwnas.latency.table import LatencyTable, open_table
from hwnas.measure.timing import Protocol, Stats
from hwnas.search.config import RunConfig
from hwnas.search.objectives import Constraint, parse_budget
from hwnas.search.rundir import RunDir
from hwnas.spaces.base import Architecture, SearchSpace
from hwnas.spaces.facts import describe
from hwnas.models.onnx_io import PARITY_ATOL, ExportReport, export_onnx

__all__ = ["CARD_FIELDS", "ModelCard", "card_markdown", "export_front", "export_models", "proxy_label"]


def _open_run_table(config: RunConfig) -> LatencyTable | None:
    if not config.table:
        return None
    table, _space, _ = open_table(config.table, allow_mismatch=True, check_device=False)
    return table


def _budget_checks(constraints: Sequence[Constraint], values: dict[str, tuple[float | None, str]]) -> dict[str, Any]:
    checks = []
    for c in constraints:
        value, source = values.get(c.name, (None, "unknown"))
        ok = None if value is None else c.met(value)
        checks.append({"budget": c.text, "hard": c.hard, "value": value, "source": source, "ok": ok})
    broken = [ch["budget"] for ch in checks if ch["ok"] is False]
    return {"ok": not broken, "broken": broken, "checks": checks}


def _pct_error(predicted: float | None, measured: float | None) -> float | None:
    if predicted is None or measured is None or not measured:
        return None
    return 100.0 * (predicted / measured - 1.0)


@dataclass(frozen=True)
class _Batch:
    """What every card of one export shares."""

    space: SearchSpace
    spec: DeviceSpec
    table: LatencyTable | None
    protocol: Protocol
    atol: float
    fingerprint: dict[str, Any]
    constraints: Sequence[Constraint]
    seeds: dict[str, Any]
    command: str
    created: str
    drift: Drift | None  # None: no table of this device to compare with
    conditions: dict[str, Any]

    @property
    def meter_source(self) -> str | None:
        e, remote = self.spec.energy, self.spec.remote
        return None if e.meter == "none" else (e.meter if remote is None else f"{e.meter}@{remote.connection}")


def export_models(
    space: SearchSpace,
    archs: Sequence[Architecture],
    out: str | Path,
    spec: DeviceSpec,
    *,
    names: Sequence[str],
    weights: Sequence[dict[str, torch.Tensor] | None],
    accuracy: Sequence[dict[str, Any]],
    table: LatencyTable | None = None,
    constraints: Sequence[Constraint] = (),
    metrics: Sequence[dict[str, Any]] | None = None,
    seeds: dict[str, Any] | None = None,
    command: str = "",
    seed: int = 0,
    int8: Int8Request | None = None,
    progress: bool = True,
    log: Callable[[str], None] = say,
) -> list[ModelCard]:
    """Export, verify and measure ``archs``; write their ONNX files and cards into ``out``.

    ``weights[i]`` is a state dict (None: the space's seeded initial weights); ``accuracy[i]``
    goes into the card as it is. With ``int8``, each model is also written statically quantized
    and measured beside its fp32 file (``hwnas.deploy.int8``). Returns the cards.
    """
    out = output_folder(out, "export folder")
    same_device = table is not None and table.device.get("name") == spec.name
    protocol = table.protocol if same_device and table else spec.protocol
    predicted = Predictor(table, space).predict(archs) if table is not None and archs else None
    atol = PARITY_ATOL if spec.runtime.provider == "CPUExecutionProvider" else 1e-3  # GPU kernels reorder sums
    target = open_target(spec)  # one for the whole export: a remote one is probed once
    conditions = _preflight(target, log)
    # sentinels re-time table entries beside the models: is the device still as profiled?
    sentinels = choose_sentinels(table, space) if same_device and table is not None else []
    exports, stats, energy, now, q_files, q_stats = _export_and_measure(
        space, archs, names, weights, out, target, protocol, seed, atol, progress, sentinels, int8)
    table_int8 = table is not None and table.precision == "int8"
    drift = drift_factor([s.table_ms for s in sentinels], now, [s.job.kind == "model" for s in sentinels]) if sentinels else None
    if drift is not None and drift.warning():
        log(f"warning: {drift.warning()}")
    batch = _Batch(space, spec, table, protocol, atol, target.fingerprint(), constraints, {**(seeds or {}), "export": seed},
                   command, time.strftime("%Y-%m-%dT%H:%M:%S%z"), drift, conditions)
    cards: list[ModelCard] = []
    for i, (arch, name, rep, st) in enumerate(zip(archs, names, exports, stats)):
        pred_ms = float(predicted.latency_ms[i]) if predicted is not None else None
        pred_mj = float(predicted.energy_mj[i]) if predicted is not None and predicted.energy_mj is not None else None
        section = None
        if int8 is not None:  # an int8 table predicts the int8 file, an fp32 table the fp32 one
            section = int8_section(Path(rep.path), q_files[i], st, q_stats[i], protocol, int8,
                                   trained=weights[i] is not None, predicted_ms=pred_ms if table_int8 else None)
            pred_ms = None if table_int8 else pred_ms
        card = _card(batch, arch, name, rep, st, energy[i], pred_ms, pred_mj, accuracy[i], metrics[i] if metrics else {},
                     section)
        write_json(out / f"{name}.json", card)
        write_atomic(out / f"{name}.md", card_markdown(card))
        cards.append(card)
        log(_card_line(card, pred_ms, st.stable))
        if section is not None:
            log(int8_line(name, section))
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


def _export_and_measure(space: SearchSpace, archs: Sequence[Architecture], names: Sequence[str],  # long: one pass
                        weights: Sequence[dict[str, torch.Tensor] | None], out: Path, target: Target, protocol: Protocol,
                        seed: int, atol: float, progress: bool, sentinels: Sequence[Sentinel] = (),
                        int8: Int8Request | None = None,
                        ) -> tuple[list[ExportReport], list[Stats], list[float | None], list[float], list[Path], list[Stats]]:
    """Verified ONNX files of the models (and their int8 versions), then their statistics and
    energy on the target, all timed interleaved with the sentinels; returns the fp32 reports,
    stats and energy, the sentinels' statistic now, the int8 files and their stats."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    spec, exports, q_files = target.spec, [], []
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  disable=not progress) as bar:
        task = bar.add_task("export ", total=len(archs))
        with torch_threads(1):
            for arch, name, state in zip(archs, names, weights):
                model = space.build(arch, seed=seed, calibrate_bn=state is None)
                if state is not None:
                    model.load_state_dict(state)
                model = model.eval().to(memory_format=torch.contiguous_format)
                example = torch.randn((spec.batch_size, *space.input_shape), generator=torch.Generator().manual_seed(seed))
                exports.append(export_onnx(model, example, out / f"{name}.onnx", dynamic_batch=False, seed=seed,
                                           atol=atol, providers=(spec.runtime.provider,)))
                if int8 is not None:
                    q_files.append(quantize_file(Path(exports[-1].path), int8, space.input_shape, spec.batch_size))
                bar.advance(task)
        meas = bar.add_task("measure", total=len(archs) + len(q_files) + len(sentinels))
        items = [(Path(r.path), [space.input_shape]) for r in exports] + [(f, [space.input_shape]) for f in q_files]
        with scratch_folder("sentinels") as tmp, torch_threads(1):
            items += [export_job(s.job, space, spec, Path(tmp), seed) for s in sentinels]
            # the device's own sessions (here, or on its remote target), the profiling protocol
            stats, energy = measure_files(spec, protocol, items, seed=seed, on_done=lambda _i, _s: bar.advance(meas),
                                          target=target)
    n, k = len(exports), len(exports) + len(q_files)
    return exports, stats[:n], energy[:n], [st.value(protocol.statistic) for st in stats[k:]], q_files, stats[n:k]


def _card(b: _Batch, arch: Architecture, name: str, rep: ExportReport, st: Stats, meas_mj: float | None,
          pred_ms: float | None, pred_mj: float | None, accuracy: dict[str, Any], metrics: dict[str, Any],
          int8: dict[str, Any] | None = None) -> ModelCard:
    """A model card: what was exported, how it was checked, and what it costs and scores."""
    facts = describe(b.space, arch)
    measured_ms = st.value(b.protocol.statistic)
    precision = "int8" if int8 is not None and b.spec.runtime.precision == "int8" else "fp32"
    known = {k: (float(v), "search") for k, v in metrics.items() if isinstance(v, (int, float)) and v is not None}
    known.update({"latency_ms": (int8["latency"]["measured_ms"] if precision == "int8" and int8 else measured_ms,
                                 "measured" if precision == "fp32" else "measured (int8)"),
                  "params": (float(facts.params), "counted"), "macs": (float(facts.macs), "counted")})
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
        "params": facts.params, "macs": facts.macs, "flops": 2 * facts.macs,
        "accuracy": accuracy,
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
                   "predicted_source": table.energy.get("source") if table is not None else None},
        "budget": _budget_checks(b.constraints, known),
        "int8": int8,
        "device": {"name": b.spec.name, "spec": b.spec.source, "fingerprint": b.fingerprint, "conditions": b.conditions},
        "seeds": b.seeds, "versions": versions(), "command": b.command, "created": b.created,
    }


def proxy_label(config: RunConfig | Mapping[str, Any]) -> str | None:
    """What the search's accuracy numbers are: the estimator, and for a supernet its score (its
    default, expected accuracy, is a mean probability, not a top-1 accuracy to quote). Takes a
    RunConfig or its JSON form (as front.json holds it)."""
    if isinstance(config, RunConfig):
        source, options = config.accuracy, config.accuracy_options
    else:
        source, options = config.get("accuracy"), config.get("accuracy_options") or {}
    if source == "supernet":
        from hwnas.evaluation.supernet import SupernetSettings

        score = options.get("score", SupernetSettings.score)
        return "supernet, " + ("expected accuracy: mean true-class probability" if score == "expected" else "top-1")
    return source


def export_front(
    run_dir: str | Path,
    out: str | Path,
    *,
    device: str | Path | DeviceSpec | None = None,
    retrain: bool = False,
    epochs: int = 15,
    limit: int | None = None,
    seed: int = 0,
    budgets: Sequence[str] = (),
    threads: int | None = None,
    int8: bool = False,
    argv: Sequence[str] | None = None,
    progress: bool = True,
    log: Callable[[str], None] = say,
) -> dict[str, Any]:
    """Export a search's front (see the module docstring); writes ``out/index.json``. With
    ``int8`` (implied on a device whose precision is int8), every model is also written
    statically quantized, measured and scored beside its fp32 file."""
    run_dir, out = Path(run_dir), Path(out)
    run = RunDir(run_dir)
    front, config = run.front(), run.config()
    space = config.build_space()
    table = _open_run_table(config)
    spec = _device_of(device, table, run_dir)
    members = front["front"]
    chosen = _chosen(front, limit, run_dir, log)
    archs = [space.parse(m["arch"]) for m in chosen]

    if retrain:
        from hwnas.deploy.retrain import retrain as do_retrain

        do_retrain(run_dir, epochs=epochs, seed=seed, archs=[a.string for a in archs], threads=threads,
                   log=log)  # skips finished ones
    record = run.retrained()
    retrained = {m["arch_id"]: m for m in (record or {"models": []})["models"]}

    names = [f"{space.name}-{i + 1:02d}-{arch.id[:8]}" for i, arch in enumerate(archs)]
    weights, accuracy = _weights_and_accuracy(archs, chosen, retrained, proxy_label(config), epochs)
    constraints = [*config.objectives.constraints, *(parse_budget(b, where="--budget") for b in budgets)]
    command = " ".join(argv) if argv is not None else " ".join(sys.argv)
    seeds = {"search": config.seed, "retrain": seed if retrained else None}
    cards = export_models(space, archs, out, spec, names=names, weights=weights, accuracy=accuracy, table=table,
                          constraints=constraints, metrics=chosen, seeds=seeds, command=command, seed=seed,
                          int8=int8_request(spec, config, space, record, int8), progress=progress, log=log)
    over = [c["name"] for c in cards if not c["budget"]["ok"]]
    index = {
        "run_dir": str(run_dir.resolve()), "out": str(out.resolve()), "device": spec.name,
        "fingerprint": cards[0]["device"]["fingerprint"], "statistic": cards[0]["latency"]["statistic"],
        "budgets": [c.text for c in constraints], "command": command, "versions": versions(),
        "created": cards[0]["created"], "front_size": len(members), "exported": len(cards), "over_budget": over,
        "models": [_index_row(c) for c in cards],
    }
    write_json(out / "index.json", index)
    run.record_export(out)
    if over:
        log(f"warning: {len(over)} of {len(cards)} models break the budget on {spec.name}: {', '.join(over)}")
    return index


def _chosen(front: dict[str, Any], limit: int | None, run_dir: Path, log: Callable[[str], None]) -> list[dict[str, Any]]:
    """The front members to export (``limit`` of them, spread along the front); a partial front is said."""
    if front.get("partial"):
        log(f"warning: {front['note']}")
    members = front["front"]
    chosen = [members[i] for i in spread(len(members), limit)]
    if not chosen:
        raise HwnasError(f"{run_dir}/front.json: the front is empty; nothing to export")
    return chosen


def _index_row(c: dict[str, Any]) -> dict[str, Any]:
    """One exported model's line in index.json, from its card."""
    return {"name": c["name"], "arch": c["arch"], "arch_id": c["arch_id"], "onnx": c["onnx"],
            "card_json": f"{c['name']}.json", "card_md": f"{c['name']}.md",
            "val_accuracy": c["accuracy"].get("val"), "test_accuracy": c["accuracy"].get("test"),
            "accuracy_source": c["accuracy"]["val_source"], "params": c["params"], "flops": c["flops"],
            "predicted_ms": c["latency"]["predicted_ms"], "measured_ms": c["latency"]["measured_ms"],
            "latency_error_pct": c["latency"]["error_pct"],
            "latency_error_drift_corrected_pct": c["latency"]["error_pct_drift_corrected"],
            "drift": (c["latency"]["drift"] or {}).get("factor"), "predicted_mj": c["energy"]["predicted_mj"],
            "measured_mj": c["energy"]["measured_mj"], "budget_ok": c["budget"]["ok"],
            "budget_broken": c["budget"]["broken"], **_int8_index(c["int8"])}


def _int8_index(q: dict[str, Any] | None) -> dict[str, Any]:
    if q is None:
        return {}
    return {"int8_onnx": q["onnx"], "int8_measured_ms": q["latency"]["measured_ms"], "int8_speedup": q["speedup"],
            "int8_faster": q["faster"], "int8_predicted_ms": q["latency"]["predicted_ms"],
            "int8_test_accuracy": q["accuracy"]["int8_test"], "fp32_onnx_test_accuracy": q["accuracy"]["fp32_test"],
            "int8_agreement_pct": q["accuracy"]["agreement_pct"], "int8_file_size_bytes": q["file_size_bytes"]}


def _device_of(device: str | Path | DeviceSpec | None, table: LatencyTable | None, run_dir: Path) -> DeviceSpec:
    """The device to measure on: as given, else the one the run's table was profiled on."""
    if isinstance(device, DeviceSpec):
        return device
    if device is not None:
        return load_device(device)
    if table is not None:
        return spec_from_record(table.device)
    raise HwnasError(f"{run_dir}: the search used no latency table; give --device devices/X.toml to measure on")


def _weights_and_accuracy(archs: Sequence[Architecture], members: Sequence[dict[str, Any]], retrained: dict[str, Any],
                          proxy: str | None, epochs: int) -> tuple[list[dict[str, torch.Tensor] | None], list[dict[str, Any]]]:
    """Per model: retrained weights and their accuracies where retraining finished, else the
    seeded initial weights and the search's proxy score, each labelled with where it came from."""
    weights: list[dict[str, torch.Tensor] | None] = []
    accuracy: list[dict[str, Any]] = []
    for arch, member in zip(archs, members):
        r = retrained.get(arch.id)
        if r and r.get("status") == "complete" and Path(r["weights"]).is_file():
            weights.append(load_weights(Path(r["weights"]), "retrained weights"))  # tensors only: no code from data
            accuracy.append({"val": r["val_accuracy"], "val_source": f"retrained from scratch ({r.get('epochs', epochs)} epochs)",
                             "test": r["test_accuracy"], "test_source": "retrained model, test split (read once)",
                             "search_proxy": member.get("accuracy"), "search_proxy_source": proxy, "weights": "retrained"})
        else:
            weights.append(None)
            accuracy.append({"val": member.get("accuracy"),
                             "val_source": f"search proxy ({proxy})" if proxy else "none",
                             "test": None, "test_source": "not measured (export with --retrain)",
                             "weights": "seeded initial weights (untrained): export with --retrain for trained weights"
                             + (f"; retraining failed: {r.get('reason')}" if r else "")})
    return weights, accuracy
