#!/usr/bin/env bash
# Search for the most accurate NAS-Bench-201 cells under a 3 ms budget (Raspberry Pi 5 latency,
# from the bundled benchmark slice), then show that a run can be resumed from its archive.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
RUN=${RUN:-runs/example-search}
rm -rf "$RUN"

hwnas search --space nb201 --objectives objectives/accuracy-latency.toml \
    --metric latency_ms=pi5_onnx_latency_ms --budget 'latency_ms<=3' \
    --strategy nsga2 --strategy-opt pop_size=20 --evaluations 80 --seed 0 \
    --benchmark tests/data/nb201_canonical.csv.gz --run-dir "$RUN" --no-progress
# resuming a finished run replays its archive: nothing is evaluated again
hwnas search --resume "$RUN" --no-progress
ls "$RUN"
