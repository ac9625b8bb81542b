"""``peak_memory_kb`` and ``model_kb``: what a candidate needs in memory on the device, known
before it is trained (cheap), at the precision of the run's table.

``peak_memory_kb`` is onnxruntime's own figure: the bytes its CPU provider's allocation plan holds
at the peak for the candidate's graph as onnxruntime optimizes it, at the device's graph
optimization level (``hwnas.models.ort_planner``), input included. It agrees exactly with what
onnxruntime's allocator is asked for while running the model (docs/benchmarks/memory.md).
``model_kb`` is the weights' bytes at the precision.

In a space whose model runs its blocks one after another (``mobilenet``, ``dppnet``) each catalog
block is exported once; a candidate's graph is its blocks' graphs joined output to input, which is
the graph its whole export has, without exporting it (tens of milliseconds a candidate instead of a
quarter of a second). Its weights are the sum of its blocks'. Other spaces (``nb201``'s cells keep
several node tensors alive) export each candidate whole, once.

The plan is made by this machine's onnxruntime. A device of another instruction set lays out its
tensors differently (onnxruntime's blocked layout and its channel padding are x86's), so for a
table profiled elsewhere the figure is the plan this machine would make; ``describe`` says which.
"""

from __future__ import annotations

import platform
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hwnas.core.log import say
from hwnas.evaluation.sources import MetricSource
from hwnas.models.memory import MemoryFacts, graph_memory
from hwnas.spaces.base import Architecture, SearchSpace

__all__ = ["MemoryMetrics", "chain_graphs", "module_memory", "planned_peak_of"]


def _exported(module: Any, input_shapes: Sequence[Sequence[int]]) -> Any:
    """``module`` exported to ONNX (batch 1, static shapes) as a ModelProto: the graph the profiler
    exports of a block, the graph the device runs. Raises ExportError for a failed export."""
    import onnx
    import torch  # loaded when a memory metric is asked for, not when a run is built

    from hwnas.models.onnx_io import ParityCheck, export_onnx

    example = tuple(torch.zeros((1, *s)) for s in input_shapes)
    with tempfile.TemporaryDirectory(prefix="hwnas-memory-") as tmp:
        path = Path(tmp) / "m.onnx"
        # shapes are what memory needs: an untrained network's numbers may drift past the parity tolerance
        export_onnx(module.eval(), example, path, dynamic_batch=False, parity=ParityCheck(inputs=1, atol=float("inf")))
        return onnx.load(str(path))


def module_memory(module: Any, input_shapes: Sequence[Sequence[int]], precision: str) -> MemoryFacts:
    """The sequential liveness bound and weights of a torch module as exported to ONNX."""
    return graph_memory(_exported(module, input_shapes), precision)


def chain_graphs(models: Sequence[Any]) -> Any:
    """One ModelProto that runs ``models`` (one input and one output each) one after another, each
    one's output feeding the next one's input. Raises ValueError for a model with several inputs."""
    from onnx import compose, helper

    prefixed = [compose.add_prefix(model, f"m{k}/") for k, model in enumerate(models)]
    nodes: list[Any] = []
    weights: list[Any] = []
    previous = None
    for k, model in enumerate(prefixed):
        graph = model.graph
        if len(graph.input) != 1 or len(graph.output) != 1:
            raise ValueError(f"model {k} of the chain has {len(graph.input)} inputs and {len(graph.output)} outputs")
        start = graph.input[0].name
        for node in graph.node:
            if previous is not None:
                node.input[:] = [previous if name == start else name for name in node.input]
            nodes.append(node)
        weights.extend(graph.initializer)
        previous = graph.output[0].name
    graph = helper.make_graph(nodes, "chain", [prefixed[0].graph.input[0]], [prefixed[-1].graph.output[0]], weights)
    return helper.make_model(graph, opset_imports=models[0].opset_import, ir_version=models[0].ir_version)


def planned_peak_of(model: Any, precision: str = "fp32", runtime: Any = None, input_shape: Sequence[int] = ()) -> int:
    """onnxruntime's planned peak bytes for ``model`` (a ModelProto in fp32), converted to
    ``precision`` first as the profiler converts what it times (int8: random calibration)."""
    import onnx

    from hwnas.models.ort_planner import planned_peak_bytes, runtime_program

    if precision != "fp32":
        from hwnas.models.quantize import Calibration, to_precision

        with tempfile.TemporaryDirectory(prefix="hwnas-memory-") as tmp:
            path = Path(tmp) / "m.onnx"
            onnx.save(model, str(path))
            to_precision(path, precision, Calibration.random(0), [tuple(input_shape)])
            model = onnx.load(str(path))
    return planned_peak_bytes(runtime_program(model, runtime))


class MemoryMetrics(MetricSource):
    """Peak activation memory (onnxruntime's plan) and weights of each candidate, in KiB, at
    ``precision``, under ``runtime`` (a RuntimeSettings: its graph optimization level; default
    all). ``device_machine``: the table's device's machine (``platform.machine()`` there), to say
    when the plan was made on another one."""

    provides = ("peak_memory_kb", "model_kb")

    def __init__(self, space: SearchSpace, precision: str = "fp32", runtime: Any = None,
                 device_machine: str | None = None) -> None:
        self.space, self.precision, self.runtime = space, precision, runtime
        self.device_machine = device_machine
        self.sequential = bool(getattr(space, "blocks_in_sequence", False))
        n = len(space.catalog()) if self.sequential else 0
        self._weights = np.full(n, np.nan)
        self._graphs: dict[int, Any] = {}
        self._whole: dict[str, MemoryFacts] = {}
        self._peak: dict[str, float] = {}
        self._failed: dict[str, str] = {}  # why a peak is unknown -> the first architecture it happened to

    def _block(self, i: int) -> Any:
        if i not in self._graphs:
            from hwnas.latency.measurement import build_block_model

            block = self.space.catalog()[i]
            self._graphs[i] = _exported(build_block_model(self.space, block), [block.in_shape] * block.n_inputs)
            self._weights[i] = graph_memory(self._graphs[i], self.precision).weights_bytes
        return self._graphs[i]

    def _graph(self, arch: Architecture) -> Any:
        if self.sequential:
            index = self.space.catalog_index()
            blocks = self.space.blocks(arch)
            if all(b.n_inputs == 1 for b in blocks):
                return chain_graphs([self._block(index[b.key]) for b in blocks])
        return _exported(self.space.build(arch, seed=0, calibrate_bn=False), [self.space.input_shape])

    def _weights_of(self, archs: Sequence[Architecture]) -> np.ndarray:
        if self.sequential:
            idx, weight = self.space.block_slots(np.array([a.genes for a in archs], dtype=np.int64))
            for i in np.unique(idx[weight > 0]):
                self._block(int(i))
            return (np.where(weight > 0, self._weights[idx], 0.0) * weight.astype(float)).sum(1)
        for a in archs:
            if a.id not in self._whole:
                self._whole[a.id] = module_memory(self.space.build(a, seed=0, calibrate_bn=False),
                                                  [self.space.input_shape], self.precision)
        return np.array([self._whole[a.id].weights_bytes for a in archs], dtype=float)

    def evaluate(self, archs: Sequence[Architecture]) -> dict[str, np.ndarray]:
        if not archs:
            return {m: np.zeros(0) for m in self.provides}
        for a in archs:
            if a.id not in self._peak:
                try:
                    self._peak[a.id] = float(planned_peak_of(self._graph(a), self.precision, self.runtime,
                                                             self.space.input_shape))
                except Exception as exc:  # one candidate's export or plan failed: unknown (NaN), the rest go on
                    self._peak[a.id] = float("nan")
                    why = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                    if why not in self._failed:  # said once per kind of failure, not per candidate
                        self._failed[why] = a.string
                        say(f"warning: peak_memory_kb of {a.string} is unknown (NaN): {why}")
        peak = np.array([self._peak[a.id] for a in archs], dtype=float)
        return {"peak_memory_kb": peak / 1024, "model_kb": self._weights_of(archs) / 1024}

    def describe(self) -> dict[str, Any]:
        import onnxruntime

        level = getattr(self.runtime, "graph_optimization", "all")
        here = platform.machine()
        out = {"source": "onnxruntime's allocation plan of the exported graph", "precision": self.precision,
               "graph_optimization": level, "planned_on": f"{here}, onnxruntime {onnxruntime.__version__}",
               "method": "blocks joined in sequence" if self.sequential else "whole model"}
        if self.device_machine and self.device_machine != here:
            out["note"] = (f"the device is {self.device_machine}: planned by this machine's onnxruntime, whose "
                           "layout transforms may differ from the device's")
        return out
