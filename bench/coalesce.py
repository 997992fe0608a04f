#!/usr/bin/env python3
"""What coalescing trades, with a model whose time grows with its batch.

Release binaries: the service and the Lambda emulator answering in
150 ms + 15 ms per input (as a real model's batch time grows), and
`translation-front loadtest` at 20, 100 and 400 req/s, for coalescing off, the
default (adaptive, COALESCE_MAX_WAIT=2ms) and two longer waits. Each figure is
the median of RUNS runs. Distinct inputs (no cache, no repeats), so only
coalescing groups them.

Billed time per input is the emulator's cost model summed over invocations:
(150 ms x invocations + 15 ms x inputs) / inputs.

    python3 bench/coalesce.py      (after cargo build --release --bin translation-front --example lambda-emulator)
"""
import os
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench as b  # noqa: E402

RUNS = int(os.environ.get("BENCH_RUNS", "3"))
SECONDS = 10
BASE_MS, PER_INPUT_MS = 150, 15
RATES = (20, 100, 400)
WAITS = [("off", "0"), ("default (2ms, adaptive)", "2ms"), ("10ms", "10ms"), ("20ms", "20ms")]


class Emulator(b.Emulator):
    def __init__(self):
        self.port = b.free_port()
        self.proc = b.subprocess.Popen(
            [b.EMU, "--port", str(self.port), "--latency-ms", str(BASE_MS), "--per-input-ms", str(PER_INPUT_MS)],
            stdout=b.subprocess.PIPE, stderr=b.subprocess.DEVNULL, text=True)
        self.proc.stdout.readline()


def one(rate, wait, inputs):
    emu = Emulator()
    svc = b.Service(emu, COALESCE_MAX_WAIT=wait, CACHE_TTL="0", MAX_INFLIGHT_INVOCATIONS="512")
    try:
        report = b.loadtest(svc, rate, SECONDS, 2000, ["--inputs", inputs, "--beam", "5", "--n-best", "5", "--no-attention"])
        invocations = svc.metric('lambda_invocations_total{outcome="ok"}')
        done = report["completed"]
        return {
            "errors": report["errors"] + report["not_sent"],
            "per_input": invocations / done,
            "billed": (BASE_MS * invocations + PER_INPUT_MS * done) / done,
            "p50": report["latency"]["p50_ms"],
            "p99": report["latency"]["p99_ms"],
        }
    finally:
        svc.stop()
        emu.stop()


def main():
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write("\n".join(f"[{i + 1}CH3]O.CCO" for i in range(5000)) + "\n")
        inputs = f.name
    rows = []
    try:
        for rate in RATES:
            for name, wait in WAITS:
                runs = [one(rate, wait, inputs) for _ in range(RUNS)]
                med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
                spread = {k: (min(r[k] for r in runs), max(r[k] for r in runs)) for k in ("p50", "p99")}
                rows.append((rate, name, med, spread))
                print(rate, name, med, file=sys.stderr)
    finally:
        os.unlink(inputs)
    print(f"Emulator: {BASE_MS} ms + {PER_INPUT_MS} ms per input; {SECONDS} s per run; medians of {RUNS} runs "
          f"(p50/p99 spread in brackets); distinct inputs, result cache off.\n")
    print("| req/s | COALESCE_MAX_WAIT | invocations per input | billed ms per input | p50 | p99 | errors |")
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: |")
    for rate, name, m, s in rows:
        print(f"| {rate} | {name} | {m['per_input']:.3f} | {m['billed']:.0f} | {m['p50']:.0f} ms "
              f"({s['p50'][0]:.0f}-{s['p50'][1]:.0f}) | {m['p99']:.0f} ms ({s['p99'][0]:.0f}-{s['p99'][1]:.0f}) | "
              f"{m['errors']:.0f} |")


if __name__ == "__main__":
    main()
