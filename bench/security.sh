#!/usr/bin/env bash
# Plays the attacks of docs/security.md against the release binary on 127.0.0.1
# and writes the measured table into docs/security.md. Takes about 8 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --bin translation-front --example lambda-emulator
ulimit -n 16384 2>/dev/null || true
exec python3 bench/security.py "$@"
