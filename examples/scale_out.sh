#!/usr/bin/env bash
# Scale out (needs the extra: pip install 'hwnas[dask]'): the same seeded search with real
# training, first on an embedded Dask LocalCluster, then on a scheduler and two workers started by
# hand on this machine (on a cluster, run `dask worker` on each node instead). Both give the same
# trace as `--executor local`.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
RUN=${RUN:-runs/example-scale-out}
rm -rf "$RUN"
SEARCH=(hwnas search --space dppnet --input 1x8x8 --space-opt N=1 --space-opt growth=8 --space-opt stem_channels=8
        --objective accuracy:max --objective params:min --accuracy train --accuracy-opt dataset=digits
        --accuracy-opt epochs=1 --accuracy-opt threads=1 --strategy nsga2 --strategy-opt pop_size=4
        --evaluations 8 --seed 0 --no-progress)

"${SEARCH[@]}" --executor dask-local:2 --run-dir "$RUN/local-cluster"

PORT=${PORT:-8786}
dask scheduler --host 127.0.0.1 --port "$PORT" --no-dashboard >"$RUN.scheduler.log" 2>&1 &
SCHED=$!
dask worker "tcp://127.0.0.1:$PORT" --nworkers 2 --nthreads 1 --no-dashboard >"$RUN.workers.log" 2>&1 &
WORKERS=$!
trap 'kill $WORKERS $SCHED 2>/dev/null || true' EXIT
sleep 3
"${SEARCH[@]}" --executor "dask://127.0.0.1:$PORT" --run-dir "$RUN/cluster"
