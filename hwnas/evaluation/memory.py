"""``peak_memory_kb`` and ``model_kb``: what a candidate needs in memory on the device, known
before it is trained (cheap), at the precision of the run's table.

Both come from the exported ONNX graph (``hwnas.models.memory``): the peak of live activations in
the graph's node order, and the weights' bytes. In a space whose model runs its blocks one after
another (``mobilenet``, ``dppnet``), only the block in flight and its input are live, so a model's
peak is the largest of its blocks' peaks and its weights the sum of theirs: each catalog block is
exported and analysed once, and any number of candidates then costs array lookups. Other spaces
(``nb201``'s cells keep several node tensors alive) export each candidate whole, once.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hwnas.evaluation.sources import MetricSource
from hwnas.models.memory import MemoryFacts, graph_memory
from hwnas.spaces.base import Architecture, SearchSpace

__all__ = ["MemoryMetrics", "module_memory"]


def module_memory(module: Any, input_shapes: Sequence[Sequence[int]], precision: str) -> MemoryFacts:
    """The memory facts of a torch module as exported to ONNX (batch 1, the exporter the search's
    models are exported with)."""
    import onnx
    import torch  # loaded when a memory metric is asked for, not when a run is built

    from hwnas.models.onnx_io import ParityCheck, export_onnx

    example = tuple(torch.zeros((1, *s)) for s in input_shapes)
    with tempfile.TemporaryDirectory(prefix="hwnas-memory-") as tmp:
        path = Path(tmp) / "m.onnx"
        # the export the profiler makes of a block (one parity input): the graph the device runs
        export_onnx(module.eval(), example, path, dynamic_batch=False, parity=ParityCheck(inputs=1))
        return graph_memory(onnx.load(str(path)), precision)


class MemoryMetrics(MetricSource):
    """Peak activation memory and weights of each candidate, in KiB, at ``precision``."""

    provides = ("peak_memory_kb", "model_kb")

    def __init__(self, space: SearchSpace, precision: str = "fp32") -> None:
        self.space, self.precision = space, precision
        self.sequential = bool(getattr(space, "blocks_in_sequence", False))
        n = len(space.catalog()) if self.sequential else 0
        self._peak, self._weights = np.full(n, np.nan), np.full(n, np.nan)
        self._whole: dict[str, MemoryFacts] = {}

    def _block(self, i: int) -> None:
        from hwnas.latency.measurement import build_block_model

        block = self.space.catalog()[i]
        facts = module_memory(build_block_model(self.space, block), [block.in_shape] * block.n_inputs, self.precision)
        self._peak[i], self._weights[i] = facts.peak_activation_bytes, facts.weights_bytes

    def _composed(self, archs: Sequence[Architecture]) -> tuple[np.ndarray, np.ndarray]:
        idx, weight = self.space.block_slots(np.array([a.genes for a in archs], dtype=np.int64))
        used = np.unique(idx[weight > 0])
        for i in used[np.isnan(self._peak[used])]:
            self._block(int(i))
        w = weight.astype(float)
        peak = np.where(w > 0, self._peak[idx], 0.0).max(1)
        weights = (np.where(w > 0, self._weights[idx], 0.0) * w).sum(1)
        return peak, weights

    def evaluate(self, archs: Sequence[Architecture]) -> dict[str, np.ndarray]:
        if not archs:
            return {m: np.zeros(0) for m in self.provides}
        if self.sequential:
            peak, weights = self._composed(archs)
        else:
            for a in archs:
                if a.id not in self._whole:
                    model = self.space.build(a, seed=0, calibrate_bn=False)
                    self._whole[a.id] = module_memory(model, [self.space.input_shape], self.precision)
            peak = np.array([self._whole[a.id].peak_activation_bytes for a in archs], dtype=float)
            weights = np.array([self._whole[a.id].weights_bytes for a in archs], dtype=float)
        return {"peak_memory_kb": peak / 1024, "model_kb": weights / 1024}

    def describe(self) -> dict[str, Any]:
        return {"source": "memory of the exported graph", "precision": self.precision,
                "method": "blocks in sequence" if self.sequential else "whole model"}
