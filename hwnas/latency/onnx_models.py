"""Any ONNX model, measured as the device's tables are: ``hwnas measure MODEL.onnx ...``.

A user's own model (the one in production, one from a model zoo) is timed with the device's
protocol and statistic (threads, pinning, warm-up, paced interleaved rounds, sweeps), several files
in one interleaved pass, so its latency compares with a table's predictions and with a search's
budget. Each file is checked first: it must be ONNX that the checker accepts, with static input
shapes (a symbolic batch dimension is bound to the device's batch size) and ops the device's
runtime has; anything else is one ``ModelFileError`` line naming the file (exit 1). Parameters
count the initializers; multiply-adds count Conv, ConvTranspose, Gemm and MatMul nodes from the
inferred shapes.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hwnas.core.errors import HwnasError
from hwnas.core.files import check_regular
from hwnas.device.spec import DeviceSpec

__all__ = ["ModelFile", "ModelFileError", "ModelMeasurement", "Reference", "inspect_model", "measure_models",
           "measure_reference"]


class ModelFileError(HwnasError, RuntimeError):
    """An ONNX file that cannot be measured: not ONNX, shapes it cannot fix, an op the runtime lacks."""


@dataclass(frozen=True)
class ModelFile:
    """What a file is, before it is timed: its input shapes (without the batch), its counts."""

    path: Path
    inputs: tuple[tuple[int, ...], ...]
    params: int
    macs: int
    sha256: str
    peak_memory_kb: float | None = None  # onnxruntime's allocation plan (hwnas.models.ort_planner); None: unknown
    model_kb: float | None = None


@dataclass(frozen=True)
class ModelMeasurement:
    """One file as measured: the device statistic (``latency_ms``), its spread and stability."""

    name: str
    path: str
    latency_ms: float
    statistic: str
    p50_ms: float
    cv: float
    stable: bool
    energy_mj: float | None
    params: int
    macs: int
    sha256: str
    peak_memory_kb: float | None
    model_kb: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _static_dims(path: Path, value: Any, batch_size: int) -> tuple[int, ...]:
    dims = value.type.tensor_type.shape.dim
    if not dims:
        raise ModelFileError(f"{path}: input {value.name!r} has no known shape; export it with static shapes")
    shape = []
    for k, d in enumerate(dims):
        if d.HasField("dim_value") and d.dim_value > 0:
            shape.append(int(d.dim_value))
        elif k == 0:  # a symbolic batch: bound to the device's batch size
            shape.append(batch_size)
        else:
            raise ModelFileError(f"{path}: input {value.name!r} has a dynamic dimension {k} "
                                 f"({d.dim_param or '?'}); export it with static shapes (only the batch may vary)")
    if shape[0] != batch_size:
        raise ModelFileError(f"{path}: input {value.name!r} has a fixed batch of {shape[0]}, and the device measures "
                             f"batches of {batch_size} (export it with batch {batch_size} or a dynamic batch)")
    return tuple(shape[1:])


def _shapes(model: Any) -> dict[str, tuple[int, ...]]:
    """Every tensor's static shape after onnx's shape inference (those it could infer)."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    out: dict[str, tuple[int, ...]] = {}
    for v in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]:
        dims = v.type.tensor_type.shape.dim
        if dims and all(d.HasField("dim_value") for d in dims):
            out[v.name] = tuple(int(d.dim_value) for d in dims)
    for init in model.graph.initializer:
        out[init.name] = tuple(int(d) for d in init.dims)
    return out


def count_macs(model: Any) -> int:
    """Multiply-adds of one inference of ``model`` (an onnx ModelProto): Conv and ConvTranspose
    (output elements x input channels per group x kernel area), Gemm and MatMul (M x N x K)."""
    shapes = _shapes(model)
    total = 0
    for node in model.graph.node:
        if node.op_type in ("Conv", "ConvTranspose") and len(node.input) > 1:
            w, out = shapes.get(node.input[1]), shapes.get(node.output[0])
            x = shapes.get(node.input[0])
            if w is None or out is None or x is None:
                continue
            if node.op_type == "Conv":  # weights (C_out, C_in / group, k...)
                total += math.prod(out) * w[1] * math.prod(w[2:])
            else:  # weights (C_in, C_out / group, k...): each input element meets C_out / group kernels
                total += math.prod(x) * w[1] * math.prod(w[2:])
        elif node.op_type in ("Gemm", "MatMul"):
            a, out = shapes.get(node.input[0]), shapes.get(node.output[0])
            if a is None or out is None:
                continue
            trans_a = next((a_.i for a_ in node.attribute if a_.name == "transA"), 0)
            k = a[-2] if node.op_type == "Gemm" and trans_a else a[-1]
            total += math.prod(out) * k
    return int(total)


def file_memory(model: Any, batch_size: int) -> tuple[float | None, float | None]:
    """Peak activation memory (onnxruntime's allocation plan, ``hwnas.models.ort_planner``) and
    weights (each tensor at its own type), in KiB, of an onnx ModelProto run with ``batch_size``;
    None for what cannot be worked out (an exotic graph onnxruntime or onnx cannot size)."""
    import onnx

    from hwnas.models.memory import graph_memory
    from hwnas.models.ort_planner import planned_peak_bytes, runtime_program

    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    for value in fixed.graph.input:  # a symbolic batch bound, as the device runs it
        dims = value.type.tensor_type.shape.dim
        if dims and not (dims[0].HasField("dim_value") and dims[0].dim_value > 0):
            dims[0].dim_value = batch_size
    for value in fixed.graph.output:  # inference fills the outputs in again, with the bound batch
        value.type.tensor_type.ClearField("shape")
    try:
        weights_kb: float | None = graph_memory(fixed).model_kb
    except Exception:  # shapes onnx cannot infer: unknown, not fatal
        weights_kb = None
    try:
        peak_kb: float | None = planned_peak_bytes(runtime_program(fixed, batch=batch_size)) / 1024
    except Exception:  # a graph onnxruntime cannot run on zeros (the session check reports why)
        peak_kb = None
    return peak_kb, weights_kb


def inspect_model(path: str | os.PathLike[str], batch_size: int = 1) -> ModelFile:
    """Check ``path`` and read what it is; raises ModelFileError with one line naming it."""
    import onnx

    p = Path(path)
    check_regular(p, ModelFileError, "ONNX model")
    try:
        model = onnx.load(str(p))
        onnx.checker.check_model(model)
    except Exception as exc:  # protobuf's DecodeError, onnx's ValidationError, a truncated file
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelFileError(f"{p}: not a valid ONNX model ({text[:200]})") from None
    initializers = {i.name for i in model.graph.initializer}
    inputs = tuple(_static_dims(p, v, batch_size) for v in model.graph.input if v.name not in initializers)
    if not inputs:
        raise ModelFileError(f"{p}: the model has no inputs to feed")
    params = int(sum(math.prod(i.dims) for i in model.graph.initializer))
    try:
        macs = count_macs(model)
    except Exception:  # shape inference that fails on an exotic graph: the count is unknown, not fatal
        macs = 0
    return ModelFile(p, inputs, params, macs, hashlib.sha256(p.read_bytes()).hexdigest(),
                     *file_memory(model, batch_size))


def _probe(spec: DeviceSpec, f: ModelFile) -> None:
    """Open a session on the device's runtime: an op it lacks is one line, before any timing."""
    from hwnas.measure.session import open_session

    if spec.remote is not None:
        return  # the remote agent opens it; its failure comes back as that model's error
    try:
        open_session(f.path, spec.runtime, source=str(f.path))
    except HwnasError:
        raise
    except Exception as exc:  # onnxruntime's Fail, InvalidGraph, NotImplemented
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelFileError(f"{f.path}: onnxruntime ({spec.runtime.provider}) cannot run it: {text[:300]}") from None


def measure_models(spec: DeviceSpec, paths: Sequence[str | os.PathLike[str]], *, seed: int = 0,
                   on_done: Callable[[int, Any], None] | None = None) -> list[ModelMeasurement]:
    """Time ``paths`` on ``spec``'s device, interleaved in one pass, with its protocol and statistic."""
    from hwnas.latency.measurement import measure_files

    files = [inspect_model(p, spec.batch_size) for p in paths]
    for f in files:
        _probe(spec, f)
    stats, energy = measure_files(spec, spec.protocol, [(f.path, list(f.inputs)) for f in files], seed=seed,
                                  on_done=on_done)
    statistic = spec.protocol.statistic
    return [ModelMeasurement(f.path.stem, str(f.path), float(s.value(statistic)), statistic, float(s.p50_ms),
                             float(s.cv), bool(s.stable), None if e is None or not np.isfinite(e) else float(e),
                             f.params, f.macs, f.sha256, f.peak_memory_kb, f.model_kb)
            for f, s, e in zip(files, stats, energy)]


@dataclass(frozen=True)
class Reference:
    """A user's model as the yardstick of a search: measured now beside the table's sentinels, and
    put in the table's terms (``latency_ms``: what the table would have predicted for it), so that a
    budget made from it means the same whatever the device's state while it was timed."""

    path: str
    sha256: str
    params: int
    macs: int
    measured_ms: float  # the device's statistic now
    drift: float  # now / when profiled, at the reference's latency (sentinels timed in the same pass)
    latency_ms: float  # measured_ms / drift: in the table's terms
    statistic: str
    table: str
    peak_memory_kb: float | None = None
    model_kb: float | None = None

    def values(self) -> dict[str, float]:
        """The metrics a budget may be a factor of (``latency_ms<=0.9x``, ``peak_memory_kb<=1x``)."""
        memory = {"peak_memory_kb": self.peak_memory_kb, "model_kb": self.model_kb}
        return {"latency_ms": self.latency_ms, **{k: v for k, v in memory.items() if v is not None}}

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "values": self.values()}


def measure_reference(path: str | os.PathLike[str], table: Any, space: Any, *, seed: int = 0) -> Reference:
    """Time ``path`` on the table's device in one interleaved pass with the table's sentinels."""
    from hwnas.device.connect import open_target
    from hwnas.device.spec import spec_from_record
    from hwnas.latency.drift import measure_beside

    spec = spec_from_record(table.device)
    f = inspect_model(path, spec.batch_size)
    if f.inputs != (tuple(space.input_shape),):
        shape = ", ".join("x".join(map(str, s)) for s in f.inputs)
        raise ModelFileError(f"{f.path}: the reference takes input {shape}, and the search's space "
                             f"{'x'.join(map(str, space.input_shape))}; a budget from it would compare other work")
    _probe(spec, f)
    drift, _, stats = measure_beside(table, space, open_target(spec), [(f.path, list(f.inputs))], seed=seed)
    measured = float(stats[0].value(table.statistic))
    factor = float(drift.at(measured))
    factor = float(drift.at(measured / factor))  # the trend at its latency in the table's terms
    return Reference(str(f.path.resolve()), f.sha256, f.params, f.macs, measured, factor, measured / factor,
                     table.statistic, str(table.path), f.peak_memory_kb, f.model_kb)
