#!/usr/bin/env bash
# The benchmark: builds in release mode, then measures translation-front against
# the Lambda emulator on 127.0.0.1 and writes docs/performance.md.
#   bench/run.sh                   # 3 runs (medians and spread), then the memory soaks
#   BENCH_RUNS=5 bench/run.sh
#   SOAK_MINUTES=0 bench/run.sh    # no soaks (they take 4 x SOAK_MINUTES, default 10)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --bin translation-front --example lambda-emulator --example codec-bench
ulimit -n 4096 2>/dev/null || true
minutes=${SOAK_MINUTES:-10}
if [ "$minutes" != 0 ]; then
  # Memory over minutes under distinct molecules: SMILES mode at 16 and 64 in
  # flight, text mode at 16, SMILES at 64 with the result cache (bench.py draws them).
  rm -f target/soak-*.json
  python3 bench/soak.py --minutes "$minutes" --inflight 16 --format smiles > target/soak-smiles-16.json
  python3 bench/soak.py --minutes "$minutes" --inflight 64 --format smiles > target/soak-smiles-64.json
  python3 bench/soak.py --minutes "$minutes" --inflight 16 --format text > target/soak-text-16.json
  # And with the result cache at its defaults: it fills to its budget and stays.
  python3 bench/soak.py --minutes "$minutes" --inflight 64 --format smiles --env CACHE_TTL=1h \
    > target/soak-smiles-64-cache.json
fi
exec python3 bench/bench.py "$@"
