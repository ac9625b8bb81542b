"""Is ``peak_memory_kb`` what onnxruntime really holds? A script, not a test.

For N random architectures of a space, compares the memory objective (``MemoryMetrics``:
onnxruntime's allocation plan of the candidate's graph, its blocks' graphs joined for spaces whose
blocks run in sequence) with what onnxruntime's own allocator held while running the whole
exported model once (``hwnas.models.memory.onnxruntime_peak``): the bytes requested and in use
after each kernel, and the arena's peak (chunk rounding and kernels' scratch included), each above
the weights and with the input. Prints the share within +-10%, the median and worst relative
differences, the rank agreement, and the old sequential liveness bound beside them.

    .venv/bin/python tests/bench/memory_vs_onnxruntime.py [SPACE] [CxHxW] [N] [key=value ...]
    .venv/bin/python tests/bench/memory_vs_onnxruntime.py mobilenet 1x28x28 30 scale=0.25

``graph_optimization=disable|basic|extended|all`` (default all, as devices run) sets the level of
onnxruntime's own graph transformations; the other key=value pairs are the space's options.
"""

from __future__ import annotations

import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

from hwnas.core.versions import versions
from hwnas.evaluation.memory import MemoryMetrics, module_memory
from hwnas.measure.session import RuntimeSettings
from hwnas.models.memory import onnxruntime_peak
from hwnas.models.onnx_io import ParityCheck, export_onnx
from hwnas.spaces import get_space


def _report(label: str, ours: np.ndarray, measured: list[float]) -> None:
    m = np.asarray(measured)
    rel = (ours - m) / m
    rho = spearmanr(ours, m).statistic
    print(f"  {label}: {100 * np.mean(np.abs(rel) <= 0.10):.0f}% within +-10%, {100 * np.mean(rel == 0):.0f}% exact, "
          f"median {100 * np.median(rel):+.1f}%, range {100 * rel.min():+.1f}% .. {100 * rel.max():+.1f}%, "
          f"Spearman {rho:.3f}")


def main(argv: list[str]) -> int:
    name = argv[0] if argv else "mobilenet"
    shape = argv[1] if len(argv) > 1 else "3x32x32"
    n = int(argv[2]) if len(argv) > 2 else 30
    options = {k: v for k, v in (a.split("=", 1) for a in argv[3:])}
    runtime = RuntimeSettings(graph_optimization=options.pop("graph_optimization", "all"))
    options = {k: float(v) for k, v in options.items()}
    space = get_space(name, input_shape=shape, **options)
    archs = space.sample(np.random.default_rng(0), n)
    metrics = MemoryMetrics(space, runtime=runtime)
    start = time.perf_counter()
    ours = metrics.evaluate(archs)["peak_memory_kb"]
    took = time.perf_counter() - start
    bound, arena, requested = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for a in archs:
            path = str(Path(tmp) / f"{a.id}.onnx")
            model = space.build(a, seed=0, calibrate_bn=False).eval()
            # shapes matter here, not numbers: untrained BatchNorm may drift past the parity tolerance
            export_onnx(model, torch.zeros((1, *space.input_shape)), path, dynamic_batch=False,
                        parity=ParityCheck(inputs=1, atol=float("inf")))
            peak = onnxruntime_peak(path, runtime)
            arena.append(peak.arena_peak_bytes / 1024)
            requested.append(peak.requested_peak_bytes / 1024)
            bound.append(module_memory(model, [space.input_shape], "fp32").peak_memory_kb)
    print(f"{name} {shape} {options or ''} onnxruntime level {runtime.graph_optimization}, {platform.machine()}: "
          f"{n} random architectures (seed 0); peak_memory_kb took {took:.1f} s ({1000 * took / n:.0f} ms each, "
          "block exports included)")
    _report("peak_memory_kb vs onnxruntime's bytes requested and in use", ours, requested)
    _report("peak_memory_kb vs onnxruntime's arena peak (chunks, scratch)", ours, arena)
    _report("sequential liveness bound vs bytes requested", np.asarray(bound), requested)
    v = versions()
    print(f"  onnxruntime {v.get('onnxruntime')}, torch {v.get('torch')}; command: "
          f"python tests/bench/memory_vs_onnxruntime.py {' '.join(argv)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
