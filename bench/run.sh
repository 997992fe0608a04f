#!/usr/bin/env bash
# The benchmark: builds in release mode, then measures translation-front against
# the Lambda emulator on 127.0.0.1 and writes docs/performance.md.
#   bench/run.sh              # 3 runs (medians and spread)
#   BENCH_RUNS=5 bench/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --bin translation-front --example lambda-emulator --example codec-bench
ulimit -n 4096 2>/dev/null || true
exec python3 bench/bench.py "$@"
