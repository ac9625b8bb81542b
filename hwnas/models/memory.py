"""Memory of an exported model: peak activation memory and the weights' size, at a precision.

Peak activation memory is a liveness analysis of the ONNX graph run in its node order (a
topological order, the one onnxruntime's sequential executor follows): a tensor is allocated when
the node that makes it runs and freed after the last node that reads it; while a node runs, its
inputs and its outputs are all live. The graph's inputs are live from the start, its outputs to the
end; weights (initializers) are not activations and are counted apart. Element sizes are the
precision's (4 bytes for fp32, 2 for fp16, 1 for int8 activations and weights), or the tensors' own.
`MemoryFacts` is the plain sequential bound that MCUNet-style budgets use, the same on every device;
hwnas uses its weights. A runtime's own figure differs both ways: fusions and in-place ops go below
it, buffers kept for reuse and layout copies above it. ``peak_memory_kb`` is onnxruntime's own
plan (``hwnas.models.ort_planner``); ``onnxruntime_peak`` reads what its allocator held.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

__all__ = ["ELEMENT_BYTES", "MemoryFacts", "RuntimePeak", "graph_memory", "onnxruntime_peak"]

ELEMENT_BYTES = {"fp32": 4, "fp16": 2, "int8": 1}


@dataclass(frozen=True)
class MemoryFacts:
    """Peak bytes of live activations over the node order, and bytes of the weights."""

    peak_activation_bytes: int
    weights_bytes: int

    @property
    def peak_memory_kb(self) -> float:
        return self.peak_activation_bytes / 1024

    @property
    def model_kb(self) -> float:
        return self.weights_bytes / 1024


def _dtype_bytes(elem_type: int) -> int:
    import onnx

    return int(onnx.helper.tensor_dtype_to_np_dtype(elem_type).itemsize) if elem_type else 4


def graph_memory(model: Any, precision: str | None = None) -> MemoryFacts:
    """The memory facts of ``model`` (an onnx ModelProto with static shapes); ``precision`` sets
    every element's size (None: each tensor's own type). Raises ValueError for a tensor whose shape
    shape inference cannot fix."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    graph = inferred.graph
    weights = {i.name for i in graph.initializer}
    for node in graph.node:  # constants made from constants (an Identity of a deduplicated weight): weights too
        if all(name in weights for name in node.input if name):
            weights.update(o for o in node.output if o)
    fixed = ELEMENT_BYTES.get(precision) if precision else None
    sizes: dict[str, int] = {}
    for v in [*graph.input, *graph.value_info, *graph.output]:
        t = v.type.tensor_type
        dims = t.shape.dim
        if v.name in weights or not all(d.HasField("dim_value") for d in dims):
            continue
        sizes[v.name] = math.prod(int(d.dim_value) for d in dims) * (fixed or _dtype_bytes(t.elem_type))

    def size(name: str) -> int:
        if name in weights or not name:
            return 0
        if name not in sizes:
            raise ValueError(f"tensor {name!r} has no static shape; export the model with static shapes")
        return sizes[name]

    last_use: dict[str, int] = {}
    for k, node in enumerate(graph.node):
        for name in node.input:
            last_use[name] = k
    outputs = {o.name for o in graph.output}
    live = {i.name: size(i.name) for i in graph.input if i.name not in weights}
    peak = sum(live.values())
    for k, node in enumerate(graph.node):
        for name in node.output:
            if name:
                live[name] = size(name)
        peak = max(peak, sum(live.values()))  # inputs and outputs together while the node runs
        for name in list(live):
            if last_use.get(name, -1) <= k and name not in outputs:
                del live[name]
    initial = {i.name: math.prod(i.dims) * (fixed or _dtype_bytes(i.data_type)) for i in graph.initializer}
    # an exporter's Identity of a deduplicated weight stands for a weight of its own in a trained model
    aliases = sum(initial[n.input[0]] for n in graph.node
                  if n.op_type == "Identity" and n.input and n.input[0] in initial and n.output[0] not in initial)
    return MemoryFacts(int(peak), int(sum(initial.values()) + aliases))


@dataclass(frozen=True)
class RuntimePeak:
    """What onnxruntime itself held for activations in one run (its profiler's allocator figures).

    ``arena_peak_bytes``: the CPU arena's peak bytes in use during the run (padded to the arena's
    blocks, scratch buffers inside kernels included) above what it held before the first node
    (weights and prepacked weights), plus the caller's input tensors, which onnxruntime reads in
    place; ``requested_peak_bytes``: the largest bytes requested and in use after a node, the same
    way, without padding or scratch."""

    arena_peak_bytes: int
    requested_peak_bytes: int
    nodes: int  # kernels run: after onnxruntime's own graph optimizations (fusions, layout changes)


def onnxruntime_peak(path: str, runtime: Any = None) -> RuntimePeak:
    """Run ``path`` once on onnxruntime's CPU provider with its profiler on and memory patterns off
    (each tensor allocated when made, freed after its last reader, in onnxruntime's execution
    order), and read the allocator's figures. ``runtime``: the device's RuntimeSettings (its graph
    optimization level); one intra-op thread. Raises ValueError when the profiler carries no memory
    figures (onnxruntime older than 1.23)."""
    import json
    import os
    import tempfile

    import onnxruntime as ort

    from hwnas.measure.session import RuntimeSettings, session_options
    from hwnas.models.ort_planner import zero_feeds

    settings = runtime or RuntimeSettings()
    so = session_options(settings)
    so.intra_op_num_threads, so.inter_op_num_threads = 1, 1
    so.enable_mem_pattern = False  # a planned block per run would hide the per-tensor lifetimes
    so.enable_profiling = True
    with tempfile.TemporaryDirectory(prefix="hwnas-ortmem-") as tmp:
        so.profile_file_prefix = os.path.join(tmp, "profile")
        session = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        feeds = zero_feeds(session)
        input_bytes = sum(x.nbytes for x in feeds.values())
        session.run(None, feeds)
        with open(session.end_profiling()) as f:
            events = [e for e in json.load(f) if e.get("cat") == "Node" and "mem_bytes_in_use" in e.get("args", {})]
    if not events:
        raise ValueError(f"{path}: onnxruntime {ort.__version__}'s profiler reports no memory figures")
    first = events[0]["args"]
    held = int(first["mem_bytes_in_use"]) - int(first["mem_in_use_delta"])
    requested = int(first["mem_bytes_requested_in_use"]) - int(first["mem_requested_in_use_delta"])
    in_use = [int(e["args"]["mem_bytes_in_use"]) for e in events]
    peaks = [int(e["args"]["mem_in_use_peak"]) for e in events]
    # the peak is the allocator's since the session was made: a rise during the run is the run's
    # (a kernel's scratch included); a peak already reached while the session was made is not
    arena = max(in_use + [p for k, p in enumerate(peaks) if k and p > peaks[k - 1]]) - held
    after = max(int(e["args"]["mem_bytes_requested_in_use"]) for e in events) - requested
    return RuntimePeak(arena + input_bytes, after + input_bytes, len(events))
