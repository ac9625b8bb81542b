"""Model cards: the JSON record of one exported model, and its readable markdown form."""

from __future__ import annotations

import json
from typing import Any, TypedDict


class ModelCard(TypedDict):
    """A model card (``NAME.json`` beside ``NAME.onnx``; ``NAME.md`` is its readable form)."""

    name: str
    arch: str
    arch_id: str
    canonical: str
    space: dict[str, Any]  # name, version, config
    input_shape: list[int]
    batch_size: int
    onnx: str  # file name, beside the card
    onnx_sha256: str
    file_size_bytes: int
    precision: str  # what the device runs (and the budget is checked in): fp32 or int8
    checks: dict[str, Any]  # checker, onnxruntime session, parity with torch
    params: int
    macs: int
    flops: int  # 2 x MACs
    memory: dict[str, Any]  # peak activations and weights (KiB) of the exported graph, at its precision
    accuracy: dict[str, Any]  # val and test, each with where it came from
    latency: dict[str, Any]  # predicted, measured, error raw and drift-corrected, the protocol
    energy: dict[str, Any]
    budget: dict[str, Any]  # every budget checked against measured values
    reference: dict[str, Any] | None  # against the user's own model (timed in the same pass); None: no reference
    int8: dict[str, Any] | None  # the statically quantized file, side by side (hwnas.deploy.int8); None: not asked
    device: dict[str, Any]  # name, spec, fingerprint, conditions
    seeds: dict[str, Any]
    versions: dict[str, str]
    command: str
    created: str


CARD_FIELDS = tuple(ModelCard.__annotations__)


def _fmt(v: Any, unit: str = "", digits: int = 3) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}{unit}"
    return f"{v}{unit}"


def _int8_markdown(q: dict[str, Any] | None) -> list[str]:
    if not q:
        return []
    lat, acc = q["latency"], q["accuracy"]
    verdict = (f"int8 is {q['speedup']:.2f}x faster" if q["faster"]
               else f"**int8 is NOT faster on this device** ({_fmt(q['speedup'], 'x', 2)})")
    return ["## fp32 and int8 side by side", "",
            "| | fp32 | int8 |", "|---|---|---|",
            f"| file | {q['fp32_file_size_bytes'] / 1e3:.0f} kB | [{q['onnx']}]({q['onnx']}), "
            f"{q['file_size_bytes'] / 1e3:.0f} kB |",
            f"| latency ({lat['statistic']}, measured) | {_fmt(lat['fp32_measured_ms'])} ms | {_fmt(lat['measured_ms'])} ms |",
            f"| test accuracy (onnxruntime) | {_fmt(acc['fp32_test'], '%', 2)} | {_fmt(acc['int8_test'], '%', 2)} |", "",
            f"{verdict}; top-1 agreement on the test split {_fmt(acc['agreement_pct'], '%', 1)}"
            f"{'' if acc['int8_test'] is not None else ' (' + acc.get('note', '') + ')'}. Calibration: "
            f"{q['quantization']['calibration']['source']}.", ""]


def reference_words(ref: dict[str, Any] | None) -> str | None:
    """``2.10x faster and 1.3 points more accurate (95% interval -0.2 to +2.8) than ref.onnx``."""
    if not ref or not ref.get("speedup"):
        return None
    x = ref["speedup"]
    text = f"{x:.2f}x faster" if x >= 1 else f"{1 / x:.2f}x slower"
    if ref.get("accuracy_points") is not None:
        d, (lo, hi) = ref["accuracy_points"], ref["accuracy_points_ci95"]
        text += (f" and {abs(d):.1f} points {'more' if d >= 0 else 'less'} accurate (95% interval {lo:+.1f} to "
                 f"{hi:+.1f})")
    return f"{text} than {ref['path'].rsplit('/', 1)[-1]}"


def _reference_markdown(ref: dict[str, Any] | None) -> list[str]:
    if not ref:
        return []
    words = reference_words(ref)
    if words is None:
        return ["## Against your reference", "", f"{ref['path']} was not timed: the file is gone or has changed.", ""]
    lines = ["## Against your reference", "", f"{words[0].upper()}{words[1:]}.", "",
             f"- Latency: {ref['measured_ms']:.4f} ms for the reference, timed in the same interleaved pass."]
    if ref.get("accuracy") is not None:
        lines.append(f"- Accuracy: the reference {ref['accuracy']:.2f}% on the same test split "
                     f"({ref['test_images']} images), from its ONNX file.")
    return [*lines, ""]


def _stability_line(lat: dict[str, Any]) -> str:
    """How the measurement went, in words: the spread of single runs is not the statistic's."""
    st = lat["measured_stats"]
    verdict = ("it repeated across sweeps, so the figure is trustworthy" if lat.get("stable", True) else
               "it did NOT repeat after re-measurement: measure again on a quieter device")
    return (f"Measured with {st['n_runs']} runs: median {st['p50_ms']:.3f} ms, single runs spread {st['cv']:.0%} around "
            f"their mean (CV); the {lat['statistic']} reported above is robust to that spread, and {verdict}. "
            f"Predicted from {lat['predicted_from'] or 'no table'}.")


def _drift_line(lat: dict[str, Any]) -> str:
    """The device's drift since profiling, said as what it means for predictions."""
    factor = float(lat["drift"]["factor"])
    if factor >= 1:
        state = (f"predictions on this device are currently {100 * (factor - 1):.0f}% optimistic: it runs "
                 f"{factor:.2f}x slower than when it was profiled")
    else:
        state = (f"predictions on this device are currently {100 * (1 - factor):.0f}% pessimistic: it runs "
                 f"{1 / factor:.2f}x faster than when it was profiled")
    return (f"Drift: {state} (timed on sentinel blocks beside this model); corrected for it, the prediction is "
            f"{_fmt(lat['drift_corrected_ms'])} ms ({_fmt(lat['error_pct_drift_corrected'], '%', 1)} from the measurement).")


def _memory_line(memory: dict[str, Any] | None) -> list[str]:
    if not memory:  # cards written before memory was reported
        return []
    return [f"- Memory ({memory['precision']}): peak activations {memory['peak_memory_kb']:,.1f} KiB, weights "
            f"{memory['model_kb']:,.1f} KiB ({memory.get('method', 'liveness analysis of the exported graph')})"]


def card_markdown(card: ModelCard) -> str:
    acc, lat, en, bud = card["accuracy"], card["latency"], card["energy"], card["budget"]
    fp = card["device"]["fingerprint"]
    lines = [
        f"# {card['name']}", "",
        f"`{card['arch']}` ({card['space']['name']} v{card['space']['version']}, id {card['arch_id']})", "",
        f"- ONNX: [{card['onnx']}]({card['onnx']}), opset {card['checks']['opset']}, input "
        f"{card['batch_size']}x{'x'.join(map(str, card['input_shape']))}, sha256 `{card['onnx_sha256'][:16]}...`",
        f"- Checks: onnx.checker passed; onnxruntime {', '.join(card['checks']['onnxruntime_session'])}; "
        f"parity with torch {card['checks']['parity_max_abs_diff']:.2e} (<= {card['checks']['parity_atol']:g})",
        f"- Parameters: {card['params']:,}; FLOPs: {card['flops'] / 1e6:.2f} M ({card['macs'] / 1e6:.2f} M MACs)",
        *_memory_line(card.get("memory")), "",
        "## Accuracy", "",
        "| split | accuracy (%) | source |", "|---|---|---|",
        f"| validation | {_fmt(acc.get('val'), digits=2)} | {acc.get('val_source', '-')} |",
        f"| test | {_fmt(acc.get('test'), digits=2)} | {acc.get('test_source', '-')} |", "",
        f"## Latency and energy on {card['device']['name']}", "",
        "| | predicted | measured | error |", "|---|---|---|---|",
        f"| latency ({lat['statistic']}, ms) | {_fmt(lat['predicted_ms'])} | {_fmt(lat['measured_ms'])} | "
        f"{_fmt(lat['error_pct'], '%', 1)} |",
        f"| energy (mJ) | {_fmt(en['predicted_mj'])} | {_fmt(en['measured_mj'])} | {_fmt(en['error_pct'], '%', 1)} |", "",
        _stability_line(lat), "",
        *([_drift_line(lat), ""] if lat.get("drift") else []),
        *_reference_markdown(card.get("reference")),
        *_int8_markdown(card.get("int8")),
        "## Budget", "",
        ("All budgets met." if bud["ok"] else f"**BREAKS THE BUDGET: {', '.join(bud['broken'])}**"), "",
    ]
    lines += [f"- `{c['budget']}`: {_fmt(c['value'])} ({c['source']}) -> "
              f"{'ok' if c['ok'] else ('unknown' if c['ok'] is None else 'BROKEN')}"
              + ("" if c.get("spare_pct") is None else
                 f" ({c['spare_pct']:.1f}% to spare)" if c["spare_pct"] >= 0 else f" ({-c['spare_pct']:.1f}% over)")
              for c in bud["checks"]]
    lines += ["", "## Provenance", "",
              f"- Device: {fp.get('cpu_model', '?')} ({fp.get('cpu_count', '?')} cores), {fp.get('os', '?')}, "
              f"onnxruntime {fp.get('onnxruntime_version', '?')}, provider {fp.get('provider_used', '?')}, "
              f"{fp.get('intra_op_threads', '?')} intra-op threads, affinity {fp.get('affinity')}",
              f"- Seeds: {json.dumps(card['seeds'])}",
              f"- Versions: {', '.join(f'{k} {v}' for k, v in card['versions'].items())}",
              f"- Command: `{card['command']}`", f"- Created: {card['created']}", ""]
    return "\n".join(lines)
