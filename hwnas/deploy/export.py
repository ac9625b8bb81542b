"""``hwnas export RUN_DIR --out D``: the search's front as verified ONNX models with model cards,
re-measured on the device.

How it works, and why: ``docs/design.md`` (hwnas.deploy.export).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from hwnas.core.log import say
from hwnas.core.files import write_json
from hwnas.core.errors import HwnasError
from hwnas.core.versions import versions
from hwnas.deploy.cards import CARD_FIELDS, ModelCard, card_markdown, reference_words
from hwnas.deploy.int8 import int8_request
from hwnas.deploy.models import ModelToExport, Provenance, export_models
from hwnas.device.spec import DeviceSpec, load_device, spec_from_record
from hwnas.evaluation.supernet import load_weights
from hwnas.latency.table import LatencyTable, open_table
from hwnas.optimize.config import RunConfig
from hwnas.optimize.choice import accuracy_images, default_selection, quality_metric, recommend, select
from hwnas.optimize.objectives import ObjectiveSet, parse_budget
from hwnas.optimize.rundir import RunDir
from hwnas.spaces.base import Architecture

__all__ = ["CARD_FIELDS", "ExportSettings", "ModelCard", "ModelToExport", "Provenance", "card_markdown", "export_front",
           "export_models", "proxy_label"]


def _open_run_table(config: RunConfig) -> LatencyTable | None:
    if not config.table:
        return None
    table, _space, _ = open_table(config.table, allow_mismatch=True, check_device=False)
    return table


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


@dataclass(frozen=True)
class ExportSettings:
    """How a run's front is exported.

    :param retrain: retrain each member from scratch for ``epochs`` first (else the files carry
        seeded initial weights, and the cards say so).
    :param select: which members, in which order: ``accuracy`` (the most accurate within every
        budget first), ``accuracy-1se`` (of those within one standard error of the most accurate
        on the search's validation images, the fastest first), ``knee`` (the front's knee first) or
        ``extremes`` (spread between the front's ends); default ``accuracy`` when the run has a hard
        budget, else ``extremes``.
    :param limit: export only this many of them.
    :param budgets: extra budgets (``"latency_ms<=2"``) to check the measured models against.
    :param int8: also write each model statically quantized, measured and scored beside fp32
        (implied on a device whose precision is int8).
    """

    retrain: bool = False
    epochs: int = 15
    limit: int | None = None
    seed: int = 0
    budgets: Sequence[str] = ()
    threads: int | None = None
    int8: bool = False
    select: str | None = None


def export_front(run_dir: str | Path, out: str | Path, settings: ExportSettings = ExportSettings(), *,
                 device: str | Path | DeviceSpec | None = None, argv: Sequence[str] | None = None,
                 progress: bool = True, log: Callable[[str], None] = say) -> dict[str, Any]:
    """Export a search's front (see the module docstring) to ``out``, measured on ``device`` (default:
    the device of the run's table); writes and returns ``out/index.json``. Raises RunDirError (no
    search in ``run_dir``), ObjectiveError (a bad budget) and ExportError (a model fails its checks)."""
    s = settings
    extra = [parse_budget(b, where="--budget") for b in s.budgets]  # a bad budget fails before any work
    run_dir, out = Path(run_dir), Path(out)
    run = RunDir(run_dir)
    front, config = run.front(), run.config()
    space = config.build_space()
    table = _open_run_table(config)
    spec = _device_of(device, table, run_dir)
    how = s.select or default_selection(config.objectives)
    chosen = _chosen(front, config.objectives, how, s.limit, run_dir, log,
                     accuracy_images(run.meta().get("sources")))
    archs = [space.parse(m["arch"]) for m in chosen]
    if s.retrain:
        from hwnas.deploy.retrain import retrain as do_retrain

        do_retrain(run_dir, epochs=s.epochs, seed=s.seed, archs=[a.string for a in archs], threads=s.threads,
                   log=log)  # skips finished ones
    record = run.retrained()
    retrained = {m["arch_id"]: m for m in (record or {"models": []})["models"]}
    weights, accuracy = _weights_and_accuracy(archs, chosen, retrained, proxy_label(config), s.epochs)
    models = [ModelToExport(a, f"{space.name}-{i + 1:02d}-{a.id[:8]}", w, acc, m)
              for i, (a, w, acc, m) in enumerate(zip(archs, weights, accuracy, chosen))]
    checked = config.objectives.with_budgets(extra)  # the run's budgets and the extra ones
    constraints = list(checked.constraints)
    command = " ".join(argv) if argv is not None else " ".join(sys.argv)
    seeds = {"search": config.seed, "retrain": s.seed if retrained else None}
    provenance = Provenance(table, constraints, seeds, command, s.seed, int8_request(spec, config, space, record, s.int8),
                            config.reference)
    cards = export_models(space, models, out, spec, provenance, progress=progress, log=log)
    over = [c["name"] for c in cards if not c["budget"]["ok"]]
    rec = _recommendation(cards, chosen, checked, (record or {}).get("split_sizes", {}).get("test"))
    index = {
        "run_dir": str(run_dir.resolve()), "out": str(out.resolve()), "device": spec.name,
        "fingerprint": cards[0]["device"]["fingerprint"], "statistic": cards[0]["latency"]["statistic"],
        "budgets": [c.text for c in constraints], "command": command, "versions": versions(),
        "created": cards[0]["created"], "front_size": len(front["front"]), "exported": len(cards), "over_budget": over,
        "selection": how, "models": [_index_row(c) for c in cards], "recommended": rec,
    }
    write_json(out / "index.json", index)
    run.record_export(out)
    if over:
        log(f"warning: {len(over)} of {len(cards)} models break the budget on {spec.name}: {', '.join(over)}")
    if rec:
        log(f"recommended: {rec['name']} ({rec['arch']}): {rec['why']}")
    return index


def _recommendation(cards: list[ModelCard], chosen: list[dict[str, Any]], objectives: ObjectiveSet,
                    test_n: int | None) -> dict[str, Any] | None:
    """The exported model to ship (``choice.recommend``) from what was measured: test accuracy
    where retrained (with its interval over ``test_n`` images), measured latency, energy and counts."""
    members = []
    for card, member in zip(cards, chosen):
        acc = card["accuracy"]
        measured = {"latency_ms": card["latency"]["measured_ms"], "params": card["params"], "macs": card["macs"],
                    "flops": card["flops"], "energy_mj": card["energy"]["measured_mj"],
                    **{k: card["memory"][k] for k in ("peak_memory_kb", "model_kb")}}
        row = {**member, **{k: v for k, v in measured.items() if v is not None}, "name": card["name"],
               "feasible": card["budget"]["ok"]}
        row[quality_metric(objectives)] = acc["test"] if acc.get("test") is not None else acc.get("val")
        members.append(row)
    tested = all(c["accuracy"].get("test") is not None for c in cards)
    rec = recommend(members, objectives, accuracy_n=test_n if tested else None)
    if rec is None:
        return None
    source = "test accuracy of the retrained model" if tested else "the search's accuracy proxy (export with --retrain)"
    out = {"name": rec.member["name"], "arch": rec.arch, "why": f"{rec.why} [accuracy: {source}; latency: measured]"}
    card = next(c for c in cards if c["name"] == rec.member["name"])
    against = reference_words(card.get("reference"))
    if against:
        out["against_reference"] = against
    return out


def _chosen(front: dict[str, Any], objectives: ObjectiveSet, how: str, limit: int | None, run_dir: Path,
            log: Callable[[str], None], accuracy_n: int | None = None) -> list[dict[str, Any]]:
    """The front members to export (``choice.select``; ``accuracy_n``: the search's validation
    images); a partial front is said."""
    if front.get("partial"):
        log(f"warning: {front['note']}")
    chosen = [dict(m) for m in select(front["front"], objectives, how, limit, accuracy_n=accuracy_n)]
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
            "budget_broken": c["budget"]["broken"], "peak_memory_kb": c["memory"]["peak_memory_kb"],
            "model_kb": c["memory"]["model_kb"], **_int8_index(c["int8"])}


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
