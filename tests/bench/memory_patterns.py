"""With memory patterns on (onnxruntime's default), how does ``peak_memory_kb`` compare with the
block the third run asks its allocator for? A script, not a test.

onnxruntime records the first run's allocations and lays them out as offsets in one block (a
memory pattern) that later runs request at once; the block is the plan's peak plus the packing's
fragmentation. Prints each model and the share within +-10%.

    .venv/bin/python tests/bench/memory_patterns.py mobilenet 3x32x32 10
    .venv/bin/python tests/bench/memory_patterns.py mobilenet 1x28x28 10 scale=0.25
"""

from __future__ import annotations

import json
import os
import sys
import tempfile

import numpy as np
import onnxruntime as ort
import torch

from hwnas.spaces import get_space
from hwnas.evaluation.memory import MemoryMetrics
from hwnas.models.onnx_io import export_onnx, ParityCheck
name, shape, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
opts = {k: float(v) for k, v in (a.split("=") for a in sys.argv[4:])}
space = get_space(name, input_shape=shape, **opts)
archs = space.sample(np.random.default_rng(0), n)
ours = MemoryMetrics(space).evaluate(archs)["peak_memory_kb"]
rel = []
for a, o in zip(archs, ours):
    with tempfile.TemporaryDirectory() as tmp:
        p = os.path.join(tmp, "m.onnx")
        export_onnx(space.build(a, seed=0, calibrate_bn=False).eval(), torch.zeros((1, *space.input_shape)), p,
                    dynamic_batch=False, parity=ParityCheck(inputs=1, atol=float("inf")))
        so = ort.SessionOptions(); so.enable_profiling = True; so.intra_op_num_threads = 1
        so.profile_file_prefix = os.path.join(tmp, "p"); so.log_severity_level = 3
        s = ort.InferenceSession(p, so, providers=["CPUExecutionProvider"])
        x = {s.get_inputs()[0].name: np.zeros((1, *space.input_shape), np.float32)}
        for _ in range(3):
            s.run(None, x)
        ev = [e for e in json.load(open(s.end_profiling())) if e.get("cat") == "Node"]
    k = len(ev) // 3
    first = ev[0]["args"]
    held = int(first["mem_bytes_requested_in_use"]) - int(first["mem_requested_in_use_delta"])
    run3 = ev[2 * k:]
    block = max(int(e["args"]["mem_bytes_requested_in_use"]) for e in run3) - held + int(np.prod(space.input_shape)) * 4
    rel.append((o * 1024 - block) / block)
    print(f"planned {o:.1f} KiB, pattern run {block / 1024:.1f} KiB", flush=True)
rel = np.array(rel)
print(f"{name} {shape} {opts}: planned vs the memory pattern's request: {np.mean(abs(rel) <= .1) * 100:.0f}% within 10%, "
      f"median {np.median(rel) * 100:+.1f}%, range {rel.min() * 100:+.1f}..{rel.max() * 100:+.1f}%")
