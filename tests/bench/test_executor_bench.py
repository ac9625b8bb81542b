"""Executor benchmarks (issue 9, `make bench`): printed and written to bench-results/executors.json.

1. Speed-up of a `train`-accuracy search (dppnet on digits, 3 epochs per candidate, one torch
   thread per evaluation) with 2 Dask workers against 1, on this machine; the traces must agree.
2. Per-task overhead of the Dask executor against in-process: a search whose expensive metric is
   a benchmark-table lookup (microseconds), so the difference in wall time per evaluation is the
   executor's own cost.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from hwnas.optimize.archive import Archive
from hwnas.optimize.loop import make_config, run_search
from hwnas.optimize.objectives import objectives_from_specs

pytestmark = pytest.mark.bench
ROOT = Path(__file__).resolve().parents[2]
EVALS = int(os.environ.get("HWNAS_BENCH_EXEC_EVALS", "24"))


def _trace(run: Path) -> list[tuple[str, float]]:
    with Archive(run / "archive.sqlite") as a:
        return [(r.arch, r.metrics.get("accuracy", -1.0)) for r in a.records()]


def _timed(config: dict, run: Path, executor: str) -> float:
    t0 = time.perf_counter()
    run_search(config, run, progress=False, executor=executor, log=lambda _m: None)
    return time.perf_counter() - t0


def test_dask_speedup_and_overhead(tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    train = make_config(space="dppnet", input_shape="1x8x8", space_options={"N": 1, "growth": 8, "stem_channels": 8},
                        objectives=objectives_from_specs(["accuracy:max", "params:min"]), strategy="nsga2",
                        strategy_options={"pop_size": 8}, evaluations=EVALS, seed=0, accuracy="train",
                        accuracy_options={"dataset": "digits", "epochs": 3, "threads": 1})
    wall = {ex: _timed(train, tmp_path / ex.replace(":", "-"), ex) for ex in ("local", "dask-local:1", "dask-local:2")}
    same = _trace(tmp_path / "local") == _trace(tmp_path / "dask-local-1") == _trace(tmp_path / "dask-local-2")

    lookup = make_config(space="nb201", input_shape="3x32x32", objectives=objectives_from_specs(["accuracy:max", "params:min"]),
                         strategy="random", evaluations=200, seed=0,
                         benchmark=str(ROOT / "tests" / "data" / "nb201_canonical.csv.gz"))
    over = {ex: _timed(lookup, tmp_path / f"lookup-{ex.replace(':', '-')}", ex) for ex in ("local", "dask-local:1")}
    per_task_ms = 1e3 * (over["dask-local:1"] - over["local"]) / 200
    result = {
        "command": "make bench (tests/bench/test_executor_bench.py)", "cores": os.cpu_count(),
        "train_search": {"evaluations": EVALS, "wall_s": wall, "speedup_2_vs_1_workers": wall["dask-local:1"] / wall["dask-local:2"],
                         "speedup_2_workers_vs_local": wall["local"] / wall["dask-local:2"], "identical_traces": same},
        "lookup_search": {"evaluations": 200, "wall_s": over, "dask_overhead_ms_per_task": per_task_ms,
                          "note": "includes starting the LocalCluster once (amortised over 200 tasks)"},
    }
    (ROOT / "bench-results").mkdir(exist_ok=True)
    (ROOT / "bench-results" / "executors.json").write_text(json.dumps(result, indent=1) + "\n")
    print("\n== executors ==")
    print(json.dumps(result, indent=1))
    assert same
