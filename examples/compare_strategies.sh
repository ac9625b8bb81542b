#!/usr/bin/env bash
# Compare every strategy with random search on the bundled benchmark slice.
# For the full development table use --table ../shared/benchmarks/nb201_ninapro_pi5.csv --seeds 20 --evaluations 100.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
OUT=${OUT:-runs/example-bench}

hwnas bench --space nb201 --table tests/data/nb201_canonical.csv.gz \
    --objective accuracy:max --objective pi5_onnx_latency_ms:min \
    --strategies random,nsga2,rl,evolution,progressive --evaluations 50 --seeds 5 --out "$OUT"
