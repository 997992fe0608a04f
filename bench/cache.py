#!/usr/bin/env python3
"""The result cache in numbers, on this machine, in one run.

Release binaries: the service and the Lambda emulator (50 ms per invocation,
as a warm small model), `translation-front loadtest` at a steady rate:

1. Lambda invocations per translated input and p50/p99 latency, cache on and
   off, on a workload with repeats (Zipf s=1.1 over 1,000 molecules) and one
   without (every input new).
2. CPU per request on a hit (all hits, at saturation) next to GET /healthz
   through the same stack, measured in the same run.
3. Memory: RSS idle and with the cache filled past its byte budget (with
   attention, the largest entries).
4. A shared cache across pods: the Zipf workload replayed over 2 to 10
   replicas behind a load balancer that spreads requests evenly, hit ratio per
   pod (this cache) vs one shared cache, from the same request sequence.

Prints a Markdown table; docs/performance.md carries it.

    bash bench/run.sh cache     (or: python3 bench/cache.py after a release build)
"""
import os
import random
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench as b  # noqa: E402  (the shared helpers: Service, Emulator, loadtest, cpu_ns)

RATE = 50
SECONDS = 40
ITEMS = 1000
ZIPF_S = 1.1
LATENCY_MS = 50
SEED = 20261130


def molecules(n):
    """n distinct valid SMILES: methanol with the carbon's isotope 1..n."""
    return [f"[{i + 1}CH3]O" for i in range(n)]


def zipf_sequence(items, length, s, rng):
    weights = [1.0 / (k + 1) ** s for k in range(len(items))]
    return rng.choices(items, weights=weights, k=length)


def run_workload(name, sequence, cache_on):
    emu = b.Emulator(latency_ms=LATENCY_MS)
    env = {} if cache_on else {"CACHE_TTL": "0"}
    svc = b.Service(emu, COALESCE_MAX_WAIT="0", **env)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write("\n".join(sequence) + "\n")
        path = f.name
    try:
        what = ["--inputs", path, "--beam", "5", "--n-best", "5", "--use-cache", "--no-attention"]
        report = b.loadtest(svc, RATE, SECONDS, 1000, what)
        invocations = svc.metric('lambda_invocations_total{outcome="ok"}')
        hits = svc.metric("translation_cache_hits_total")
        completed = report["completed"]
        return {
            "workload": name,
            "cache": "on" if cache_on else "off",
            "completed": completed,
            "errors": report["errors"],
            "invocations_per_input": invocations / completed if completed else 0.0,
            "hit_ratio": hits / completed if completed else 0.0,
            "p50": report["latency"]["p50_ms"],
            "p99": report["latency"]["p99_ms"],
        }
    finally:
        svc.stop()
        emu.stop()
        os.unlink(path)


def cpu_per_hit():
    """All hits at saturation vs GET /healthz, same stack, same run."""
    emu = b.Emulator(latency_ms=0)
    svc = b.Service(emu)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write("\n".join(molecules(8)) + "\n")  # eight inputs, asked again and again
        path = f.name
    try:
        hits = ["--inputs", path, "--use-cache", "--beam", "5", "--n-best", "5", "--no-attention"]
        b.loadtest(svc, 10, 1, 100, hits)  # fills the cache
        out = {}
        for name, what in [("hit", hits),
                           ("healthz", ["--mode", "page", "--path", "/healthz"])]:
            before = b.cpu_ns(svc.pid)
            report = b.loadtest(svc, 3000, 5, 64, what)
            used = b.cpu_ns(svc.pid) - before
            out[name] = used / 1000 / max(report["completed"], 1)
        out["invocations_during_hits"] = svc.metric('lambda_invocations_total{outcome="ok"}')
        return out
    finally:
        svc.stop()
        emu.stop()
        os.unlink(path)


def memory_at_budget(budget_mib=32):
    emu = b.Emulator(latency_ms=0)
    svc = b.Service(emu, CACHE_MAX_BYTES=f"{budget_mib}MiB")
    try:
        idle = b.status_kb(svc.pid, "VmRSS")
        # 40-character mixtures, five results with attention: the largest
        # entries a default request makes (about 5 x 40 x 40 weights).
        items = [f"{m}.CCCCCCCCCCCCCCCCCCCC(=O)OCC" for m in molecules(6000)]
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
            f.write("\n".join(items) + "\n")
            path = f.name
        b.loadtest(svc, 400, 15, 256, ["--inputs", path, "--use-cache", "--attention"])
        os.unlink(path)
        entries = svc.metric("translation_cache_entries")
        held = svc.metric("translation_cache_bytes")
        return {
            "idle_mib": idle / 1024,
            "full_mib": b.status_kb(svc.pid, "VmRSS") / 1024,
            "entries": entries,
            "bytes_mib": held / 2**20,
            "evictions": svc.metric("translation_cache_evictions_total"),
            "per_entry_kib": held / entries / 1024 if entries else 0.0,
        }
    finally:
        svc.stop()
        emu.stop()


def shared_vs_per_pod(sequence):
    """Hit ratio of per-pod caches (requests spread evenly at random, as a
    layer-4 balancer does across connections) vs one cache for all pods."""
    rows = []
    rng = random.Random(SEED)
    for replicas in (1, 2, 5, 10):
        seen_pod = [set() for _ in range(replicas)]
        seen_all = set()
        hits_pod = hits_all = 0
        for item in sequence:
            pod = rng.randrange(replicas)
            hits_pod += item in seen_pod[pod]
            hits_all += item in seen_all
            seen_pod[pod].add(item)
            seen_all.add(item)
        rows.append((replicas, hits_pod / len(sequence), hits_all / len(sequence)))
    return rows


def main():
    for path in (b.BIN, b.EMU):
        if not os.path.exists(path):
            sys.exit(f"{path} is missing: cargo build --release --examples")
    rng = random.Random(SEED)
    items = molecules(ITEMS)
    n = RATE * SECONDS
    zipf = zipf_sequence(items, n, ZIPF_S, rng)
    unique = molecules(n + ITEMS)[ITEMS:]
    results = []
    for name, seq in [("Zipf s=1.1 over 1,000", zipf), ("no repeats", unique)]:
        for cache_on in (False, True):
            results.append(run_workload(name, seq, cache_on))
            print(results[-1], file=sys.stderr)
    hit = cpu_per_hit()
    print(hit, file=sys.stderr)
    mem = memory_at_budget()
    print(mem, file=sys.stderr)
    shared = shared_vs_per_pod(zipf * 5)

    print(f"Emulator at {LATENCY_MS} ms per invocation; {RATE} req/s for {SECONDS} s; beam 5, top-5; "
          f"coalescing off (so the cache alone is measured).\n")
    print("| workload | cache | requests | Lambda invocations per input | hit ratio | p50 | p99 |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for r in results:
        print(f"| {r['workload']} | {r['cache']} | {r['completed']:,} | {r['invocations_per_input']:.3f} | "
              f"{r['hit_ratio']:.1%} | {r['p50']:.1f} ms | {r['p99']:.1f} ms |")
    print()
    print(f"CPU per request, all hits at saturation: {hit['hit']:.0f} µs; GET /healthz through the same stack: "
          f"{hit['healthz']:.0f} µs (ratio {hit['hit'] / hit['healthz']:.2f}); invocations during the hits: "
          f"{hit['invocations_during_hits']:.0f} (the warm-up's only).\n")
    print(f"Memory with CACHE_MAX_BYTES=32MiB filled past its budget (40-character mixtures, five results with "
          f"attention): RSS {mem['idle_mib']:.1f} MiB idle, {mem['full_mib']:.1f} MiB full; "
          f"{mem['entries']:.0f} entries counted as {mem['bytes_mib']:.1f} MiB "
          f"({mem['per_entry_kib']:.1f} KiB each), {mem['evictions']:.0f} evictions.\n")
    print("| replicas | hit ratio, cache per pod | hit ratio, one shared cache |")
    print("| ---: | ---: | ---: |")
    for replicas, pod, shared_ratio in shared:
        print(f"| {replicas} | {pod:.1%} | {shared_ratio:.1%} |")


if __name__ == "__main__":
    main()
