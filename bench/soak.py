#!/usr/bin/env python3
"""Memory over minutes under a real load test: distinct molecules, attention on.

Starts the Lambda emulator and the release service on 127.0.0.1, drives them
with `translation-front loadtest` (its built-in generator: every request a
different valid molecule) as fast as they go with N requests in flight, and
samples the service's RSS and threads every few seconds. Prints one JSON
object: the settings, the load test's report and the samples. The load is
open-loop at a rate no machine reaches, capped at N in flight: requests due
while N are open are "not sent on time", by design; errors are the answers
that were not 2xx.

    python3 bench/soak.py --minutes 10 --inflight 16 --format smiles
    python3 bench/soak.py --minutes 10 --inflight 64 --format text

bench/run.sh runs it (SOAK_MINUTES, default 10; 0 skips it) for SMILES mode at
16 and 64 in flight and text mode at 16, and bench.py draws the RSS curves in
docs/performance.md (docs/soak-rss.png).
"""
import argparse
import json
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import BIN, Emulator, Service, status_kb  # noqa: E402


def threads(pid):
    return len(os.listdir(f"/proc/{pid}/task"))


def soak(minutes, inflight, fmt, every=5.0, extra_env=None, latency_ms=0):
    emulator = Emulator(latency_ms)
    env = {"INPUT_FORMAT": fmt, "CACHE_TTL": "0", **(extra_env or {})}
    service = Service(emulator, **env)
    samples = []
    stop = threading.Event()
    started = time.perf_counter()

    def sample():
        while True:
            samples.append({
                "t": round(time.perf_counter() - started, 1),
                "rss_mb": round(status_kb(service.pid, "VmRSS") / 1024, 1),
                "anon_mb": round(status_kb(service.pid, "RssAnon") / 1024, 1),
                "threads": threads(service.pid),
            })
            if stop.wait(every):
                return

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        out = subprocess.run(
            [BIN, "loadtest", "--url", f"http://127.0.0.1:{service.port}", "--rate", "100000",
             "--duration", f"{int(minutes * 60)}s", "--max-inflight", str(inflight), "--beam", "5",
             "--n-best", "5", "--json", "--quiet"],
            capture_output=True, text=True)
        report = json.loads(out.stdout) if out.stdout.strip() else {"stderr": out.stderr}
        time.sleep(every)  # one sample after the load
    finally:
        stop.set()
        sampler.join()
        service.stop()
        emulator.stop()
    return {"format": fmt, "inflight": inflight, "minutes": minutes, "env": env, "report": report,
            "samples": samples}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=10)
    p.add_argument("--inflight", type=int, default=16)
    p.add_argument("--format", choices=["smiles", "text"], default="smiles")
    p.add_argument("--every", type=float, default=5.0)
    p.add_argument("--env", action="append", default=[], help="NAME=VALUE for the service")
    args = p.parse_args()
    extra = dict(e.split("=", 1) for e in args.env)
    result = soak(args.minutes, args.inflight, args.format, args.every, extra)
    json.dump(result, sys.stdout)
    print()


if __name__ == "__main__":
    main()
