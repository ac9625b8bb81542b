"""Converting verified fp32 ONNX files to the precision a device runs: static INT8 or fp16.

INT8 is onnxruntime's static quantization (``onnxruntime.quantization.quantize_static``) in the
QDQ format: every convolution and matrix product gets QuantizeLinear/DequantizeLinear pairs, which
onnxruntime's graph optimizer fuses into integer kernels on the device. Weights are int8, per
output channel; activations uint8 (the pairing x86 and Arm kernels implement fastest), with
ranges from the MinMax of calibration inputs.

How it works, and why: ``docs/design.md`` (hwnas.models.quantize).
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from hwnas.core.errors import ExportError, HwnasError
from hwnas.core.files import atomic_path
from hwnas.spaces.base import SearchSpace
from hwnas.models.onnx_io import load_onnx, ort_session

QDQ_OPS = frozenset({"QuantizeLinear", "DequantizeLinear"})
# operators static quantization turns into integer kernels; a file without any (a pooling or skip
# block) stays float, as it would inside a quantized network's float islands
QUANTIZABLE_OPS = frozenset({"Conv", "ConvTranspose", "MatMul", "Gemm"})
CALIBRATION_SAMPLES = 32  # images whose activations set the ranges (ORT's examples use tens to hundreds)
RANDOM_SAMPLES = 8


class QuantizationError(ExportError):
    """A model that onnxruntime could not quantize, or whose quantized file fails its checks."""


@dataclass(frozen=True)
class Calibration:
    """Inputs that set a quantized model's activation ranges.

    ``images``: real inputs at the space's input shape (already standardized), or None for seeded
    random inputs. ``source`` says where they came from, for tables and cards.
    """

    source: str
    images: np.ndarray | None = None
    seed: int = 0

    @classmethod
    def random(cls, seed: int = 0) -> Calibration:
        return cls(f"seeded standard-normal inputs ({RANDOM_SAMPLES} per file, seed {seed})", None, seed)

    @classmethod
    def from_dataset(cls, dataset: str, space: SearchSpace, *, split_seed: int = 0,
                     samples: int = CALIBRATION_SAMPLES) -> Calibration:
        """``samples`` images of the dataset's train split (the split ``train`` and ``hwnas retrain``
        use with ``split_seed``), standardized as training standardizes them."""
        from hwnas.data.datasets import load_for_space, make_splits, standardize

        ds = load_for_space(dataset, space, who="int8 calibration")
        splits = make_splits(ds, split_seed)
        mean, std = standardize(ds, splits.train)
        return cls.from_train_split(dataset, ds.x, splits.train, mean, std, split_seed=split_seed, samples=samples)

    @classmethod
    def from_train_split(cls, name: str, x: np.ndarray, train: np.ndarray, mean: np.ndarray, std: np.ndarray, *,
                         split_seed: int, samples: int = CALIBRATION_SAMPLES) -> Calibration:
        """``samples`` images drawn (seeded) from the indices ``train`` only, standardized."""
        pick = np.random.default_rng(split_seed).permutation(train)[:samples]
        images = ((x[pick] - mean[None, :, None, None]) / std[None, :, None, None]).astype(np.float32)
        return cls(f"{name}: {len(pick)} images of its train split (split seed {split_seed})", images, split_seed)

    def describe(self) -> dict[str, Any]:
        return {"source": self.source, "real_images": self.images is not None, "seed": self.seed}

    def batches(self, shapes: Sequence[tuple[int, ...]], batch: int) -> list[tuple[np.ndarray, ...]]:
        """Calibration feeds for a file with inputs of ``shapes`` (no batch dimension)."""
        if self.images is not None and len(shapes) == 1 and tuple(shapes[0]) == self.images.shape[1:]:
            n = len(self.images) // batch
            return [(self.images[i * batch:(i + 1) * batch],) for i in range(max(n, 1))]
        rng = np.random.default_rng(self.seed)
        return [tuple(rng.standard_normal((batch, *s)).astype(np.float32) for s in shapes) for _ in range(RANDOM_SAMPLES)]


@functools.lru_cache(maxsize=4)
def _dataset_calibration(dataset: str, space_name: str, config: str, split_seed: int) -> Calibration:
    import json

    from hwnas.spaces import get_space

    cfg = json.loads(config)
    space = get_space(space_name, input_shape=tuple(cfg.pop("input_shape")), num_classes=cfg.pop("num_classes"), **cfg)
    return Calibration.from_dataset(dataset, space, split_seed=split_seed)


def calibration_for(dataset: str | None, space: SearchSpace, seed: int = 0) -> Calibration:
    """The calibration a device spec asks for: a dataset's train split, or seeded random inputs."""
    import json

    if not dataset:
        return Calibration.random(seed)
    return _dataset_calibration(dataset, space.name, json.dumps(space.config(), sort_keys=True), 0)


class _Reader:
    """onnxruntime's CalibrationDataReader protocol: feeds, one dict at a time, then None."""

    def __init__(self, names: Sequence[str], feeds: Sequence[tuple[np.ndarray, ...]]) -> None:
        self._feeds: Iterator[dict[str, np.ndarray]] = iter([dict(zip(names, f)) for f in feeds])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._feeds, None)

    def rewind(self) -> None:  # pragma: no cover - only some calibrators call it
        pass


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """onnxruntime.quantization logs and prints its advice on every call, and the sessions it opens
    warn about every initializer its rewrite leaves unused."""
    import onnxruntime as ort

    logger = logging.getLogger()
    level = logger.level
    logger.setLevel(logging.ERROR)
    ort.set_default_logger_severity(3)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        ort.set_default_logger_severity(2)  # onnxruntime's default (warnings)
        logger.setLevel(level)


def quantize_int8(src: str | os.PathLike[str], dst: str | os.PathLike[str], calibration: Calibration,
                  shapes: Sequence[tuple[int, ...]], *, batch: int = 1) -> Path:
    """Static INT8 (QDQ, per-channel int8 weights, uint8 activations) of ``src`` into ``dst``;
    the result is checked (onnx.checker, QDQ operators present, onnxruntime runs it)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    source = load_onnx(src, full_check=False)
    names = [i.name for i in source.graph.input]
    quantizable = any(n.op_type in QUANTIZABLE_OPS for n in source.graph.node)
    feeds = calibration.batches(shapes, batch)
    with atomic_path(dst) as tmp, _quiet():
        try:
            quantize_static(str(src), str(tmp), _Reader(names, feeds), quant_format=QuantFormat.QDQ, per_channel=True,
                            weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8,
                            calibrate_method=CalibrationMethod.MinMax)
        except HwnasError:
            raise
        except Exception as exc:
            raise QuantizationError(f"{src}: onnxruntime could not quantize it ({type(exc).__name__}: "
                                    f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
        check_quantized(tmp, required=quantizable)
    return Path(dst)


def check_quantized(path: str | os.PathLike[str], *, required: bool = True) -> dict[str, int]:
    """Raise QuantizationError unless ``path`` is a valid ONNX file that onnxruntime loads and, if
    ``required``, holds quantized operators; returns the counts of its quantization operators."""
    model = load_onnx(path, full_check=False)
    ops = [n.op_type for n in model.graph.node]
    counts = {op: ops.count(op) for op in sorted(set(ops)) if op in QDQ_OPS or op.startswith("QLinear")}
    if required and not counts:
        raise QuantizationError(f"{path}: holds no QuantizeLinear/DequantizeLinear or QLinear operators")
    ort_session(path)
    return counts


def convert_fp16(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> Path:
    """fp16 weights and arithmetic, fp32 inputs and outputs (for GPU providers)."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
    with atomic_path(dst) as tmp:
        onnx.save(model, str(tmp))
        load_onnx(tmp, full_check=False)
    return Path(dst)


def to_precision(path: Path, precision: str, calibration: Calibration | None, shapes: Sequence[tuple[int, ...]],
                 *, batch: int = 1) -> Path:
    """Convert the fp32 file at ``path`` in place to ``precision`` (fp32: unchanged)."""
    if precision == "fp32":
        return path
    if precision == "int8":
        return quantize_int8(path, path, calibration or Calibration.random(), shapes, batch=batch)
    if precision == "fp16":
        return convert_fp16(path, path)
    raise QuantizationError(f"precision {precision!r} is not fp32, int8 or fp16")  # the spec checks it first


def export_pair(model: Any, input_shape: Sequence[int], calibration: Calibration, folder: Path,
                name: str = "model", *, seed: int = 0) -> tuple[Path, Path]:
    """A trained torch model as a verified fp32 ONNX file (dynamic batch) and its static INT8
    version: ``<folder>/<name>.onnx`` and ``<folder>/<name>.int8.onnx``."""
    import torch

    from hwnas.models.onnx_io import ParityCheck, export_onnx

    example = torch.randn((1, *input_shape), generator=torch.Generator().manual_seed(seed))
    fp32 = folder / f"{name}.onnx"
    export_onnx(model.eval(), example, fp32, dynamic_batch=True, parity=ParityCheck(seed=seed))
    int8 = quantize_int8(fp32, folder / f"{name}.int8.onnx", calibration, [tuple(input_shape)], batch=1)
    return fp32, int8


def onnx_predictions(path: str | os.PathLike[str], x: np.ndarray, *, threads: int | None = None,
                     batch: int = 256) -> np.ndarray:
    """Top-1 predictions of an ONNX classifier on ``x`` (N, C, H, W) through onnxruntime."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
    session = ort_session(path, options=options)
    name = session.get_inputs()[0].name
    fixed = session.get_inputs()[0].shape[0]
    step = fixed if isinstance(fixed, int) else batch
    return np.concatenate([np.argmax(session.run(None, {name: x[i:i + step].astype(np.float32)})[0], axis=1)
                           for i in range(0, len(x), step)]) if len(x) else np.zeros(0, dtype=int)


def top1_percent(predictions: np.ndarray, labels: np.ndarray) -> float:
    return 100.0 * float(np.mean(predictions == labels)) if len(labels) else float("nan")
