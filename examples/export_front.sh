#!/usr/bin/env bash
# The whole loop, small enough for a minute: profile this CPU for a tiny NAS-Bench-201 skeleton
# at 1x8x8, search on scikit-learn's digits with real training under a latency budget, export
# the front (retrained from scratch, verified ONNX, re-measured, model cards), write the report.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
RUN=${RUN:-runs/example-export}
rm -rf "$RUN"
TABLE="$RUN/nb201-N1-1x8x8.json"

hwnas profile --device devices/local-cpu.toml --space nb201 --input 1x8x8 --space-opt N=1 \
    --context-models 12 --out "$TABLE" --no-progress
hwnas search --space nb201 --input 1x8x8 --space-opt N=1 --table "$TABLE" \
    --objective accuracy:max --objective latency_ms:min --budget 'latency_ms<=0.05' \
    --accuracy train --accuracy-opt dataset=digits --accuracy-opt epochs=2 --accuracy-opt threads=1 \
    --strategy nsga2 --strategy-opt pop_size=6 --evaluations 12 --seed 0 --run-dir "$RUN/search" --no-progress
hwnas export "$RUN/search" --out "$RUN/models" --retrain --epochs 3 --limit 3 --threads 1 --no-progress
hwnas report "$RUN/search"
ls "$RUN/models"
