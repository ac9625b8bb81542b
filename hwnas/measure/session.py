"""onnxruntime sessions configured from a device's ``RuntimeSettings``, and the runner the timing
protocol calls: one piece of code for local and remote sessions (a remote agent reads the
settings from JSON with ``RuntimeSettings.from_dict``)."""

from __future__ import annotations

import base64
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
import onnxruntime as ort

from hwnas.core.errors import HwnasError

OPT_LEVELS = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}
EXEC_MODES = {"sequential": ort.ExecutionMode.ORT_SEQUENTIAL, "parallel": ort.ExecutionMode.ORT_PARALLEL}
CPU = "CPUExecutionProvider"
# Relu on float[1], opset 17, IR 8: built once with onnx.helper and embedded (a target has no onnx)
_PROBE_MODEL = "CAg6NwoMCgF4EgF5IgRSZWx1EgVwcm9iZVoPCgF4EgoKCAgBEgQKAggBYg8KAXkSCgoICAESBAoCCAFCBAoAEBE="


class ProviderUnavailableError(HwnasError, RuntimeError):
    """The spec's execution provider is not available in this onnxruntime, or was not used."""


@dataclass(frozen=True)
class RuntimeSettings:
    """How a device runs a model: onnxruntime's provider (with its options), threads, graph
    optimisation, execution mode, spinning and core affinity, and the numeric format files are
    converted to before they are timed (part of a table's identity)."""

    provider: str = CPU
    intra_op_threads: int = 1
    inter_op_threads: int = 1
    graph_optimization: str = "all"
    execution_mode: str = "sequential"
    allow_spinning: bool = False
    affinity: tuple[int, ...] | None = None
    provider_options: Mapping[str, str] = field(default_factory=dict)
    precision: str = "fp32"
    calibration_data: str | None = None  # int8: a dataset for whole models' activation ranges

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types: what a job, a table and a remote agent carry."""
        d = asdict(self)
        d["affinity"] = list(self.affinity) if self.affinity is not None else None
        d["provider_options"] = dict(self.provider_options)
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RuntimeSettings:
        """The settings from their JSON form (keys this version does not know are ignored: a
        newer driver may send more)."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        if values.get("affinity") is not None:
            values["affinity"] = tuple(values["affinity"])
        if values.get("provider_options") is not None:
            values["provider_options"] = {str(k): str(v) for k, v in values["provider_options"].items()}
        return cls(**values)


def session_options(runtime: RuntimeSettings) -> ort.SessionOptions:
    """onnxruntime session options from a device's runtime settings."""
    so = ort.SessionOptions()
    so.log_severity_level = 3  # errors only: the optimizer's notes on folded constants are not the user's to act on
    so.intra_op_num_threads = runtime.intra_op_threads
    so.inter_op_num_threads = runtime.inter_op_threads
    so.graph_optimization_level = OPT_LEVELS[runtime.graph_optimization]
    so.execution_mode = EXEC_MODES[runtime.execution_mode]
    spin = "1" if runtime.allow_spinning else "0"
    so.add_session_config_entry("session.intra_op.allow_spinning", spin)
    so.add_session_config_entry("session.inter_op.allow_spinning", spin)
    if runtime.provider != CPU:
        # onnxruntime otherwise runs unsupported nodes (or everything) on the CPU without a word
        so.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
    return so


def providers_of(runtime: RuntimeSettings) -> list[Any]:
    options = dict(runtime.provider_options)
    return [(runtime.provider, options)] if options else [runtime.provider]


def open_session(model: str | os.PathLike[str] | bytes, runtime: RuntimeSettings, *, source: str = "device spec"
                 ) -> ort.InferenceSession:
    """A session on the runtime's provider; raises ProviderUnavailableError on any silent fallback."""
    provider = runtime.provider
    path_or_bytes = model if isinstance(model, bytes) else os.fspath(model)
    sess = ort.InferenceSession(path_or_bytes, sess_options=session_options(runtime), providers=providers_of(runtime))
    used = sess.get_providers()
    if not used or used[0] != provider:
        raise ProviderUnavailableError(f"{source}: onnxruntime used {used} instead of {provider}")
    return sess


def probe_session(runtime: RuntimeSettings) -> ort.InferenceSession:
    """A one-node model: which provider does a real session use with these settings?"""
    return ort.InferenceSession(base64.b64decode(_PROBE_MODEL), sess_options=session_options(runtime),
                                providers=providers_of(runtime))


def make_runner(model: str | os.PathLike[str], runtime: RuntimeSettings, shapes: Sequence[Sequence[int]],
                batch_size: int, seed: int = 0, *, source: str = "device spec") -> Callable[[], object]:
    """One inference per call on pre-bound seeded inputs (IOBinding), as the protocol times it."""
    sess = open_session(model, runtime, source=source)
    rng = np.random.default_rng(seed)
    io = sess.io_binding()
    for inp, shape in zip(sess.get_inputs(), shapes):
        io.bind_cpu_input(inp.name, rng.standard_normal((batch_size, *shape)).astype(np.float32))
    for out in sess.get_outputs():
        io.bind_output(out.name)

    def run() -> object:
        return sess.run_with_iobinding(io)

    run.session = sess  # type: ignore[attr-defined]  # keep the session alive with the closure
    return run
