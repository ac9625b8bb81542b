"""The INT8 side of an export: each front member also as a statically quantized ONNX file, measured
beside its fp32 file, with what quantization really costs.

For every member the card's ``int8`` section gives the file (QDQ, per-channel int8 weights), its
checks and size, its latency measured in the same interleaved pass as the fp32 file, the speed-up
(fp32 / int8; below 1 means int8 is *slower* on this device, and the card and terminal say so)
and, where the model has trained weights, the test accuracy of both files through onnxruntime and
the share of test images on which they agree (top-1). Calibration uses the run's dataset's train
split (never its validation or test images), else the device spec's calibration dataset, else
seeded random inputs; the card records which.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hwnas.deploy.retrain import DEFAULT_DATASETS
from hwnas.device.spec import DeviceSpec
from hwnas.measure.timing import Protocol, Stats
from hwnas.optimize.config import RunConfig
from hwnas.spaces.base import SearchSpace
from hwnas.models.quantize import Calibration, calibration_for, check_quantized, onnx_predictions, quantize_int8, top1_percent


@dataclass(frozen=True)
class Int8Request:
    """How to quantize and score the exported models."""

    calibration: Calibration
    test_images: np.ndarray | None = None  # standardized, the test split of the retraining dataset
    test_labels: np.ndarray | None = None
    test_source: str = ""


def int8_request(spec: DeviceSpec, config: RunConfig, space: SearchSpace, retrained: dict[str, Any] | None,
                 wanted: bool) -> Int8Request | None:
    """What an export of this run quantizes with; None unless asked (``--int8``) or the device runs int8."""
    if not wanted and spec.runtime.precision != "int8":
        return None
    record = retrained or {}
    dataset = (record.get("dataset") or config.accuracy_options.get("dataset")
               or DEFAULT_DATASETS.get(config.accuracy or ""))
    split_seed = int(record.get("split_seed", config.accuracy_options.get("split_seed", 0)))
    if not dataset:
        return Int8Request(calibration_for(spec.runtime.calibration_data, space))
    from hwnas.data.datasets import load_for_space, make_splits, standardize

    ds = load_for_space(dataset, space, who="int8 export")
    splits = make_splits(ds, split_seed)
    mean, std = standardize(ds, splits.train)
    calibration = Calibration.from_train_split(dataset, ds.x, splits.train, mean, std, split_seed=split_seed)
    x = ((ds.x[splits.test] - mean[None, :, None, None]) / std[None, :, None, None]).astype(np.float32)
    return Int8Request(calibration, x, ds.y[splits.test],
                       f"{dataset}: test split ({len(splits.test)} images, split seed {split_seed}), read once")


def quantize_file(fp32: Path, request: Int8Request, input_shape: tuple[int, ...], batch: int) -> Path:
    """``<name>.int8.onnx`` beside ``<name>.onnx``: the same static batch, the same opset."""
    return quantize_int8(fp32, fp32.with_name(fp32.stem + ".int8.onnx"), request.calibration, [input_shape], batch=batch)


def _accuracy(fp32: Path, int8: Path, request: Int8Request, trained: bool) -> dict[str, Any]:
    if not trained or request.test_images is None or request.test_labels is None:
        return {"fp32_test": None, "int8_test": None, "agreement_pct": None,
                "note": "needs trained weights and their dataset: export with --retrain"}
    a = onnx_predictions(fp32, request.test_images)
    b = onnx_predictions(int8, request.test_images)
    return {"fp32_test": top1_percent(a, request.test_labels), "int8_test": top1_percent(b, request.test_labels),
            "agreement_pct": 100.0 * float(np.mean(a == b)), "evaluated_with": "onnxruntime, the exported files",
            "test_source": request.test_source}


def int8_section(fp32: Path, int8: Path, fp32_stats: Stats, int8_stats: Stats, protocol: Protocol,
                 request: Int8Request, *, trained: bool, predicted_ms: float | None) -> dict[str, Any]:
    """The card's ``int8`` section (see the module docstring)."""
    fp32_ms, int8_ms = fp32_stats.value(protocol.statistic), int8_stats.value(protocol.statistic)
    speedup = fp32_ms / int8_ms if int8_ms > 0 else None
    return {
        "onnx": int8.name, "onnx_sha256": hashlib.sha256(int8.read_bytes()).hexdigest(),
        "quantization": {"method": "onnxruntime.quantization.quantize_static", "format": "QDQ",
                         "weights": "int8, per channel", "activations": "uint8, MinMax ranges",
                         "operators": check_quantized(int8), "calibration": request.calibration.describe()},
        "file_size_bytes": int8.stat().st_size, "fp32_file_size_bytes": fp32.stat().st_size,
        "latency": {"statistic": protocol.statistic, "measured_ms": int8_ms, "fp32_measured_ms": fp32_ms,
                    "predicted_ms": predicted_ms,
                    "error_pct": None if predicted_ms is None else 100.0 * (predicted_ms / int8_ms - 1.0),
                    "stable": int8_stats.stable, "measured_stats": int8_stats.to_dict()},
        "speedup": speedup, "faster": bool(speedup is not None and speedup > 1.0),
        "accuracy": _accuracy(fp32, int8, request, trained),
    }


def int8_line(name: str, section: dict[str, Any]) -> str:
    """One terminal line per model: the int8 latency, speed-up (or that it is not faster), accuracy."""
    lat, acc, speedup = section["latency"], section["accuracy"], section["speedup"]
    verdict = (f"{speedup:.2f}x faster than fp32" if section["faster"]
               else f"NOT faster than fp32 on this device ({speedup:.2f}x)")
    predicted = ("" if lat["predicted_ms"] is None
                 else f" (predicted {lat['predicted_ms']:.3f} ms, {lat['error_pct']:+.1f}%)")
    text = f"{name}: int8 {lat['measured_ms']:.3f} ms{predicted}, {verdict}, {section['file_size_bytes'] / 1e3:.0f} kB"
    if acc["int8_test"] is not None:
        text += (f"; test {acc['fp32_test']:.2f}% fp32 -> {acc['int8_test']:.2f}% int8, "
                 f"top-1 agreement {acc['agreement_pct']:.1f}%")
    return text
