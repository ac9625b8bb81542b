#!/usr/bin/env bash
# Profile this CPU for the mobilenet space at 3x32x32, check the table, and predict one model.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"

hwnas profile --device devices/local-cpu.toml --space mobilenet --input 3x32x32
TABLE=latency_tables/local-cpu/mobilenet-3x32x32.json
hwnas validate --table "$TABLE" --samples 50 --seed 1
ARCH=$(hwnas sample --space mobilenet --input 3x32x32 --n 1 --seed 7)
hwnas predict --table "$TABLE" --arch "$ARCH"
hwnas predict --table "$TABLE" --arch "$ARCH" --json | head -8
