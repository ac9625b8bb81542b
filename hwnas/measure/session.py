"""onnxruntime sessions configured from a device spec's ``runtime`` settings, and the runner the
timing protocol calls: one piece of code for local and remote sessions."""

from __future__ import annotations

import base64
import os
from collections.abc import Callable, Mapping, Sequence
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


def session_options(runtime: Mapping[str, Any]) -> ort.SessionOptions:
    """onnxruntime session options from a device spec's ``runtime`` settings."""
    so = ort.SessionOptions()
    so.log_severity_level = 3  # errors only: the optimizer's notes on folded constants are not the user's to act on
    so.intra_op_num_threads = int(runtime.get("intra_op_threads", 1))
    so.inter_op_num_threads = int(runtime.get("inter_op_threads", 1))
    so.graph_optimization_level = OPT_LEVELS[runtime.get("graph_optimization", "all")]
    so.execution_mode = EXEC_MODES[runtime.get("execution_mode", "sequential")]
    spin = "1" if runtime.get("allow_spinning") else "0"
    so.add_session_config_entry("session.intra_op.allow_spinning", spin)
    so.add_session_config_entry("session.inter_op.allow_spinning", spin)
    so.log_severity_level = 3
    if runtime.get("provider", CPU) != CPU:
        # onnxruntime otherwise runs unsupported nodes (or everything) on the CPU without a word
        so.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
    return so


def providers_of(runtime: Mapping[str, Any]) -> list[Any]:
    provider = runtime.get("provider", CPU)
    options = runtime.get("provider_options") or {}
    return [(provider, dict(options))] if options else [provider]


def open_session(model: str | os.PathLike[str] | bytes, runtime: Mapping[str, Any], *, source: str = "device spec"
                 ) -> ort.InferenceSession:
    """A session on the runtime's provider; raises ProviderUnavailableError on any silent fallback."""
    provider = runtime.get("provider", CPU)
    path_or_bytes = model if isinstance(model, bytes) else os.fspath(model)
    sess = ort.InferenceSession(path_or_bytes, sess_options=session_options(runtime), providers=providers_of(runtime))
    used = sess.get_providers()
    if not used or used[0] != provider:
        raise ProviderUnavailableError(f"{source}: onnxruntime used {used} instead of {provider}")
    return sess


def probe_session(runtime: Mapping[str, Any]) -> ort.InferenceSession:
    """A one-node model: which provider does a real session use with these settings?"""
    return ort.InferenceSession(base64.b64decode(_PROBE_MODEL), sess_options=session_options(runtime),
                                providers=providers_of(runtime))


def make_runner(model: str | os.PathLike[str], runtime: Mapping[str, Any], shapes: Sequence[Sequence[int]],
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
