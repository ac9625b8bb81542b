"""The quick drift check of ``predict --now`` against the table's full protocol, side by side.

Alternates ``measure_drift(quick=True)`` and ``measure_drift(quick=False)`` on one table, ROUNDS
times each, optionally beside a busy loop pinned to another core, and prints each call's factor
(blocks and whole models), its duration, and the medians. The quick check is good enough when its
factors agree with the full protocol's about as well as two full calls agree with each other.

    .venv/bin/python tests/bench/drift_quick_vs_full.py TABLE [ROUNDS] [--busy]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np

from hwnas.device.connect import open_target
from hwnas.device.spec import spec_from_record
from hwnas.latency.drift import measure_drift
from hwnas.latency.table import open_table

BUSY = "import os, sys\nos.sched_setaffinity(0, {int(sys.argv[1])})\nwhile True:\n    sum(range(10000))\n"


def main(argv: list[str]) -> None:
    args = [a for a in argv if not a.startswith("--")]
    path, rounds = args[0], int(args[1]) if len(args) > 1 else 3
    table, space, _ = open_table(path)
    spec = spec_from_record(table.device)
    target = open_target(spec)
    measured = (spec.runtime.affinity or (0,))[0]
    others = [c for c in sorted(os.sched_getaffinity(0)) if c != measured] or [measured]
    busy = subprocess.Popen([sys.executable, "-c", BUSY, str(others[0])]) if "--busy" in argv else None
    rows: list[dict[str, object]] = []
    try:
        measure_drift(table, space, target, quick=True)  # fills the export cache: the calls below time only
        for r in range(rounds):
            for quick in (True, False):
                t0 = time.perf_counter()
                drift, _ = measure_drift(table, space, target, quick=quick)
                seconds = time.perf_counter() - t0
                d = drift.to_dict()
                models = d["models"]["factor"] if d["models"] else None
                rows.append({"round": r, "quick": quick, "factor": drift.factor, "models": models, "seconds": seconds})
                print(json.dumps(rows[-1]), flush=True)
    finally:
        if busy is not None:
            busy.kill()
    for quick in (True, False):
        mine = [x for x in rows if x["quick"] is quick]
        f = np.array([x["factor"] for x in mine], dtype=float)
        s = np.median([x["seconds"] for x in mine])
        print(f"{'quick' if quick else 'full '}: factor median {np.median(f):.3f} (range {f.min():.3f}-{f.max():.3f}), "
              f"median {s:.1f} s per call, {len(mine)} calls{' beside a busy core' if busy else ''}")
    pairs = [(a["factor"], b["factor"]) for a, b in zip(rows[::2], rows[1::2])]
    print("quick / full, per round: " + ", ".join(f"{a / b:.3f}" for a, b in pairs))


if __name__ == "__main__":
    main(sys.argv[1:])
