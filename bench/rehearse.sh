#!/usr/bin/env bash
# A rehearsal of scale events through HAProxy on 127.0.0.1 (see bench/rehearse.py):
#   bench/rehearse.sh            # scale up, rollout, scale down, a batch across a scale-down
#   bench/rehearse.sh --hpa      # then the HPA on a load ramp, drawn to docs/rehearsal-hpa.png
#   bench/rehearse.sh --nlb      # the balancer keeps sending to removed replicas, as an NLB does
#   bench/rehearse.sh --nlb --old-budget   # the former drain budget: must fail
# Needs haproxy (apt-get install haproxy); --hpa's picture needs matplotlib.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v haproxy >/dev/null || { echo "install haproxy: apt-get install haproxy" >&2; exit 2; }
if [ "${REHEARSE_PROFILE:-release}" = release ]; then
  cargo build --release --locked --bin translation-front --example lambda-emulator
fi
ulimit -n 16384 2>/dev/null || true
exec python3 bench/rehearse.py "$@"
