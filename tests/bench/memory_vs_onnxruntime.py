"""Is ``peak_memory_kb`` what onnxruntime really holds? A script, not a test.

For N random architectures of a space, compares the memory objective (``MemoryMetrics``: per-block
composition for spaces whose blocks run in sequence) with what onnxruntime's own allocator held
while running the whole exported model once (``hwnas.models.memory.onnxruntime_peak``: arena peak
above the weights, plus the input), and prints the share within +-10%, the median and worst
relative differences and the rank agreement.

    .venv/bin/python tests/bench/memory_vs_onnxruntime.py [SPACE] [CxHxW] [N] [key=value ...]
    .venv/bin/python tests/bench/memory_vs_onnxruntime.py mobilenet 1x28x28 30 scale=0.25

``graph_optimization=disable|basic|extended|all`` (default all, as devices run) sets the level of
onnxruntime's own graph transformations; the other key=value pairs are the space's options.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

from hwnas.core.versions import versions
from hwnas.evaluation.memory import MemoryMetrics
from hwnas.measure.session import RuntimeSettings
from hwnas.models.memory import onnxruntime_peak
from hwnas.models.onnx_io import export_onnx
from hwnas.spaces import get_space


def main(argv: list[str]) -> int:
    name = argv[0] if argv else "mobilenet"
    shape = argv[1] if len(argv) > 1 else "3x32x32"
    n = int(argv[2]) if len(argv) > 2 else 30
    options = {k: v for k, v in (a.split("=", 1) for a in argv[3:])}
    runtime = RuntimeSettings(graph_optimization=options.pop("graph_optimization", "all"))
    options = {k: float(v) for k, v in options.items()}
    space = get_space(name, input_shape=shape, **options)
    archs = space.sample(np.random.default_rng(0), n)
    start = time.perf_counter()
    ours = MemoryMetrics(space).evaluate(archs)["peak_memory_kb"]
    took = time.perf_counter() - start
    arena, requested = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for a in archs:
            path = str(Path(tmp) / f"{a.id}.onnx")
            model = space.build(a, seed=0, calibrate_bn=False).eval()
            export_onnx(model, torch.zeros((1, *space.input_shape)), path, dynamic_batch=False)
            peak = onnxruntime_peak(path, runtime)
            arena.append(peak.arena_peak_bytes / 1024)
            requested.append(peak.requested_peak_bytes / 1024)
    print(f"{name} {shape} {options or ''} onnxruntime level {runtime.graph_optimization}: {n} random architectures (seed 0); hwnas's analysis took {took:.1f} s")
    for label, measured in (("arena peak (padded, scratch included)", arena), ("requested after each node", requested)):
        m = np.asarray(measured)
        rel = (ours - m) / m
        rho = spearmanr(ours, m).statistic
        print(f"  vs onnxruntime {label}: {100 * np.mean(np.abs(rel) <= 0.10):.0f}% within +-10%, median "
              f"{100 * np.median(rel):+.1f}%, range {100 * rel.min():+.1f}% .. {100 * rel.max():+.1f}%, Spearman {rho:.3f}")
    v = versions()
    print(f"  onnxruntime {v.get('onnxruntime')}, torch {v.get('torch')}; command: "
          f"python tests/bench/memory_vs_onnxruntime.py {' '.join(argv)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
