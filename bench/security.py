#!/usr/bin/env python3
"""Plays each attack of docs/security.md against the release binary on 127.0.0.1
and measures what it leaves: RSS before and after, connections still open,
how long the server took to close them, whether other users were served.
Writes the table into docs/security.md between its BEGIN/END markers.

Run: bench/security.sh (builds, then runs this). Loopback only, bounded in time.
"""
import datetime
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target/release/translation-front")
EMU = os.path.join(ROOT, "target/release/examples/lambda-emulator")
DOC = os.path.join(ROOT, "docs/security.md")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def wait_port(port, deadline=20):
    end = time.time() + deadline
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on {port}")


class Server:
    def __init__(self, emu_port, **env):
        self.port, self.metrics_port = free_port(), free_port()
        e = {
            "PATH": os.environ.get("PATH", ""),
            "LISTEN_ADDR": f"127.0.0.1:{self.port}",
            "METRICS_ADDR": f"127.0.0.1:{self.metrics_port}",
            "LOG_FORMAT": "json",
            "RUST_LOG": "warn",
            "AWS_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "x",
            "AWS_SECRET_ACCESS_KEY": "y",
            "AWS_EC2_METADATA_DISABLED": "true",
            "TRANSLATION_FUNCTION": "translation",
            "AWS_ENDPOINT_URL_LAMBDA": f"http://127.0.0.1:{emu_port}",
            "LAMBDA_WARM_ON_VISIT": "0",
            "SHUTDOWN_GRACE": "1s",
        }
        e.update({k: str(v) for k, v in env.items()})
        self.proc = subprocess.Popen([BIN], env=e, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port)

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def rss(self):
        return rss_mb(self.proc.pid)

    def metric(self, name):
        text = urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10).read().decode()
        for line in text.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    def series(self):
        text = urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10).read()
        return sum(1 for l in text.decode().splitlines() if l.startswith("http_requests_total{")), len(text)

    def healthy(self):
        try:
            return urllib.request.urlopen(self.url("/healthz"), timeout=5).status == 200
        except Exception:
            return False

    def translate_ok(self):
        req = urllib.request.Request(self.url("/api/v1/translate"), data=b'{"text": "CCO", "n_best": 1}',
                                     headers={"content-type": "application/json"})
        try:
            return urllib.request.urlopen(req, timeout=30).status == 200
        except Exception:
            return False

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()


def wait_until(cond, limit):
    start = time.time()
    while time.time() - start < limit:
        if cond():
            return time.time() - start
        time.sleep(0.05)
    return None


def drip(socks, byte):
    """Sends `byte` on every socket once a second until the returned event is set."""
    stop = threading.Event()

    def run():
        while not stop.is_set():
            for x in socks:
                try:
                    x.sendall(byte)
                except OSError:
                    pass
            time.sleep(1)

    threading.Thread(target=run, daemon=True).start()
    return stop

def closed(sock):
    sock.setblocking(False)
    try:
        return sock.recv(1) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


rows = []


def row(attack, before, after, held, closed_in, others, note=""):
    rows.append((attack, f"{before:.1f}", f"{after:.1f}", held, closed_in, "yes" if others else "NO", note))
    print(rows[-1], flush=True)


def method_flood(emu):
    s = Server(emu)
    before = s.rss()
    base_series, _ = s.series()
    start = time.time()
    n = 0
    while time.time() - start < 6:
        with socket.create_connection(("127.0.0.1", s.port)) as c:
            for _ in range(100):
                c.sendall(f"X{n} /api/v1/translate HTTP/1.1\r\nHost: x\r\n\r\n".encode())
                n += 1
            c.recv(65536)
    series, size = s.series()
    row(f"method flood ({n:,} made-up methods in 6 s)", before, s.rss(), f"{series - base_series} new series",
        f"/metrics {size / 1024:.0f} KiB", s.healthy() and s.translate_ok())
    s.stop()


def bare_connects(emu):
    s = Server(emu, HEADER_READ_TIMEOUT="10s", IDLE_TIMEOUT="75s")
    before = s.rss()
    socks = []
    for _ in range(6000):
        try:
            socks.append(socket.create_connection(("127.0.0.1", s.port), timeout=5))
        except OSError:
            break
    peak = s.rss()
    others = s.healthy() and s.translate_ok()
    t = wait_until(lambda: all(closed(x) for x in socks), 40)
    after = s.rss()
    peak = int(open(f"/proc/{s.proc.pid}/status").read().split("VmHWM:")[1].split()[0]) / 1024
    row(f"{len(socks):,} bare connects (peak RSS {peak:.1f} MB)", before, after, f"{s.metric('http_connections_open'):.0f} open after",
        f"{t:.1f} s" if t is not None else "not closed in 40 s", others, "HEADER_READ_TIMEOUT 10s")
    for x in socks:
        x.close()
    s.stop()


def slowloris(emu):
    s = Server(emu)
    before = s.rss()
    socks = [socket.create_connection(("127.0.0.1", s.port)) for _ in range(200)]
    for x in socks:
        x.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
    stop = drip(socks, b"X")
    others = s.healthy() and s.translate_ok()
    t = wait_until(lambda: all(closed(x) for x in socks), 40)
    stop.set()
    row("200 slowloris heads (a byte a second)", before, s.rss(), f"{s.metric('http_connections_open'):.0f} open after",
        f"{t:.1f} s" if t is not None else "not closed in 40 s", others, "HEADER_READ_TIMEOUT 10s")
    s.stop()


def slow_bodies(emu):
    s = Server(emu)
    before = s.rss()
    socks = []
    for _ in range(50):
        x = socket.create_connection(("127.0.0.1", s.port))
        x.sendall(b"POST /api/v1/translate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 1000000\r\n\r\n{")
        socks.append(x)
    stop = drip(socks, b" ")
    others = s.healthy() and s.translate_ok()

    def answered_408():
        done = 0
        for x in socks:
            x.setblocking(False)
            try:
                data = x.recv(4096)
                if not data or b" 408 " in data:
                    done += 1
            except BlockingIOError:
                pass
            except OSError:
                done += 1
        return done == len(socks)

    t = wait_until(answered_408, 90)
    stop.set()
    row("50 slow bodies (a byte a second)", before, s.rss(), "408 request_timeout",
        f"{t:.1f} s" if t is not None else "not ended in 90 s", others, "BODY_READ_TIMEOUT 60s")
    s.stop()


def half_sent_at_shutdown(emu):
    s = Server(emu, SHUTDOWN_GRACE="1s")
    x = socket.create_connection(("127.0.0.1", s.port))
    x.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-a: ")
    before = s.rss()
    start = time.time()
    s.proc.send_signal(signal.SIGTERM)
    try:
        s.proc.wait(timeout=90)
        t = time.time() - start
    except subprocess.TimeoutExpired:
        t = None
    row("half-sent request, then SIGTERM (SHUTDOWN_GRACE=1s)", before, before, "process exited" if t else "still running",
        f"exit after {t:.1f} s" if t else "not in 90 s", True, "drain ends at LAMBDA_TIMEOUT + 5 s at most")
    s.stop()


def post(port, path, body, source="127.0.0.2", timeout=200):
    """POST JSON from `source` (any 127/8 address: distinct clients on loopback)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout, source_address=(source, 0))
    try:
        c.request("POST", path, body=json.dumps(body), headers={"content-type": "application/json"})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def victim_batch(s):
    """Another client's 200-row batch: (seconds, every row translated)."""
    start = time.time()
    try:
        status, data = post(s.port, "/api/v1/translate/batch",
                            {"inputs": [f"[{i + 1}CH3]N" for i in range(200)], "n_best": 1})
        summary = json.loads(data.decode().strip().splitlines()[-1])
        ok = status == 200 and summary.get("failed") == 0 and summary.get("succeeded") == 200
    except Exception:
        ok = False
    return time.time() - start, ok


def open_unread_batch(port, source):
    body = json.dumps({"inputs": [f"[{i + 1}CH3]O" for i in range(6000)], "beam": 10, "n_best": 10,
                       "attention": True}).encode()
    x = socket.socket()
    x.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    x.bind((source, 0))
    x.connect(("127.0.0.1", port))
    x.sendall(b"POST /api/v1/translate/batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    return x


def unread_batches(emu, n, one_address):
    """`n` clients that open a large batch and never read, default settings."""
    s = Server(emu)
    before = s.rss()
    socks = [open_unread_batch(s.port, "127.0.0.9" if one_address else f"127.0.1.{i + 1}") for i in range(n)]
    time.sleep(3)  # let them stall (this is a measurement, not a test)
    held = s.metric("lambda_invocation_slots_taken")
    took, ok = victim_batch(s)
    t = wait_until(lambda: s.metric("http_connections_open") == 0, 200)
    peak = int(open(f"/proc/{s.proc.pid}/status").read().split("VmHWM:")[1].split()[0]) / 1024
    who = f"{n} batch clients that never read, " + ("all from one address" if one_address else "each its own address")
    row(f"{who} (peak RSS {peak:.1f} MB)", before, s.rss(),
        f"{held:.0f} invocation slots taken while they stall",
        f"closed in {t:.0f} s" if t is not None else "not closed", ok,
        f"another client's 200-row batch done in {took:.2f} s; defaults (MAX_BATCHES_PER_CLIENT 4, BATCH_WRITE_STALL 10s)")
    s.stop()
    for x in socks:
        x.close()


def heavy_body(i):
    """A distinct 200-atom carbon chain (MAX_ATOMS; of the 200-atom shapes
    tried, a plain chain costs RDKit the most, ~11 ms), one carbon of it
    isotope-labelled so no answer is remembered: every prediction of the demo
    model is such a chain for RDKit to read, beam 10, n_best 10."""
    k, iso = 1 + i % 197, 1 + (i // 197) % 250
    return {"text": "C" * k + f"[{iso}CH2]" + "C" * (199 - k - 1), "beam": 10, "n_best": 10, "attention": True}


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def beside(s, attackers, attack, victim, seconds):
    """`attackers` threads calling `attack(j, i)` back to back (j the attacker,
    i its count) while a victim calls `victim(n)` every 100 ms for `seconds`.
    Returns the victim's latencies (sorted, ms) and failures, the attackers'
    answers and refusals, and the pod's cores meanwhile."""
    stop = threading.Event()
    counts = {"ok": 0, "other": 0}
    lock = threading.Lock()

    def attacker(j):
        i = j * 10_000
        while not stop.is_set():
            i += 1
            try:
                status = attack(j, i)
            except Exception:
                status = None
            with lock:
                counts["ok" if status == 200 else "other"] += 1

    threads = [threading.Thread(target=attacker, args=(j,), daemon=True) for j in range(attackers)]
    for t in threads:
        t.start()
    time.sleep(1)  # the attack under way
    cpu0, t0 = cpu_seconds(s.proc.pid), time.time()
    latencies, failures, n = [], 0, 0
    while time.time() - t0 < seconds:
        n += 1
        start = time.time()
        try:
            status = victim(n)
        except Exception:
            status = None
        latencies.append((time.time() - start) * 1000)
        failures += status != 200
        time.sleep(max(0.0, 0.1 - (time.time() - start)))
    cores = (cpu_seconds(s.proc.pid) - cpu0) / (time.time() - t0)
    stop.set()
    for t in threads:
        t.join(timeout=70)
    return sorted(latencies), failures, counts, cores


def percentiles(latencies):
    return latencies[len(latencies) // 2], latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]


def victim_beside_attackers(emu, attackers, seconds=15):
    """A victim sending a small distinct molecule every 100 ms, beside
    `attackers` clients (each its own address) sending the heaviest request
    the limits allow, back to back. The victim's p50/p99, the attackers'
    answers, the pod's CPU."""
    s = Server(emu)
    before = s.rss()

    def attack(j, i):
        return post(s.port, "/api/v1/translate", heavy_body(i), source=f"127.0.2.{j + 1}", timeout=60)[0]

    def victim(n):
        return post(s.port, "/api/v1/translate", {"text": f"[{n}CH3]CC(=O)O", "n_best": 5}, timeout=60)[0]

    latencies, failures, counts, cores = beside(s, attackers, attack, victim, seconds)
    p50, p99 = percentiles(latencies)
    peak = int(open(f"/proc/{s.proc.pid}/status").read().split("VmHWM:")[1].split()[0]) / 1024
    row(f"{attackers} clients sending the heaviest allowed request back to back (200-atom chains, beam 10, n_best 10)",
        before, s.rss(), f"pod CPU {cores:.2f} cores; attackers answered {counts['ok']}, refused {counts['other']}",
        f"peak RSS {peak:.1f} MB", failures == 0,
        f"a victim's translation every 100 ms: p50 {p50:.0f} ms, p99 {p99:.0f} ms, {failures} failed of {len(latencies)}")
    s.stop()
    return p50, p99


def get_from(port, path, source, timeout=60):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout, source_address=(source, 0))
    try:
        c.request("GET", path)
        r = c.getresponse()
        r.read()
        return r.status
    finally:
        c.close()


def drawings_beside_attackers(emu, attackers=2, seconds=15):
    """A victim asking for a small molecule's drawing every 100 ms, beside
    clients asking back to back for the largest drawings allowed (distinct
    250-atom chains, 1200 x 1200)."""
    s = Server(emu)
    before = s.rss()

    def attack(j, i):
        k, iso = 1 + i % 247, 1 + (i // 247) % 250
        chain = "C" * k + f"[{iso}CH2]" + "C" * (250 - k - 1)
        return get_from(s.port, f"/api/v1/depict?smiles={chain}&width=1200&height=1200", f"127.0.4.{j + 1}")

    def victim(n):
        return get_from(s.port, f"/api/v1/depict?smiles=[{n}CH3]CC(=O)O", "127.0.0.2")

    latencies, failures, counts, _ = beside(s, attackers, attack, victim, seconds)
    p50, p99 = percentiles(latencies)
    row(f"{attackers} clients drawing the largest molecules allowed back to back (250-atom chains, 1200 px)",
        before, s.rss(), f"attackers answered {counts['ok']}, refused {counts['other']}", "", failures == 0,
        f"a victim's drawing every 100 ms: p50 {p50:.0f} ms, p99 {p99:.0f} ms, {failures} failed of {len(latencies)}")
    s.stop()


def concurrent_heavy(emu, n=64):
    """`n` heaviest allowed requests at once, three times over: peak RSS."""
    s = Server(emu)
    before = s.rss()
    statuses = []
    lock = threading.Lock()

    def one(j, r):
        try:
            status, _ = post(s.port, "/api/v1/translate", heavy_body(r * 1000 + j), source=f"127.0.3.{j + 1}", timeout=120)
        except Exception:
            status = None
        with lock:
            statuses.append(status)

    start = time.time()
    for r in range(3):
        threads = [threading.Thread(target=one, args=(j, r)) for j in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    took = time.time() - start
    peak = int(open(f"/proc/{s.proc.pid}/status").read().split("VmHWM:")[1].split()[0]) / 1024
    answered = sum(1 for x in statuses if x == 200)
    busy = sum(1 for x in statuses if x == 503)
    row(f"{n} of the heaviest allowed requests at once, three rounds", before, s.rss(),
        f"peak RSS {peak:.1f} MB", f"{took:.0f} s for the three rounds", s.healthy() and s.translate_ok(),
        f"{answered} answered, {busy} told 503 overloaded, {len(statuses) - answered - busy} other")
    s.stop()


def worst_request(emu):
    s = Server(emu, INPUT_FORMAT="text")
    before = s.rss()
    body = json.dumps({"text": "C" * 2000, "beam": 10, "n_best": 10, "attention": True}).encode()
    req = urllib.request.Request(s.url("/api/v1/translate"), data=body, headers={"content-type": "application/json"})
    size = len(urllib.request.urlopen(req, timeout=60).read())
    peak = int(open(f"/proc/{s.proc.pid}/status").read().split("VmHWM:")[1].split()[0]) / 1024
    row("2,000 characters, beam 10, n_best 10, attention on", before, s.rss(), f"response {size / 1024:.0f} KiB",
        f"peak RSS {peak:.1f} MB", s.healthy() and s.translate_ok(), "MAX_ATTENTION_CELLS 100,000")
    s.stop()


def main():
    if not os.path.exists(BIN) or not os.path.exists(EMU):
        raise SystemExit("build first: bench/security.sh")
    emu_port = free_port()
    emu = subprocess.Popen([EMU, "--port", str(emu_port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(emu_port)
    try:
        for attack in (method_flood, bare_connects, slowloris, slow_bodies, half_sent_at_shutdown):
            attack(emu_port)
        for n, one_address in ((12, False), (24, False), (24, True)):
            unread_batches(emu_port, n, one_address)
        worst_request(emu_port)
        for attackers in (0, 2, 8, 16):
            victim_beside_attackers(emu_port, attackers)
        concurrent_heavy(emu_port)
        drawings_beside_attackers(emu_port)
    finally:
        emu.kill()
    table = ["| attack | RSS before (MB) | RSS after (MB) | what is held | closed / bounded | others served | setting |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    table += ["| " + " | ".join(r) + " |" for r in rows]
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    block = f"<!-- BEGIN MEASURED -->\nMeasured {stamp} by `bench/security.sh` (release build, 127.0.0.1, this 2-core machine):\n\n" + "\n".join(table) + "\n<!-- END MEASURED -->"
    doc = open(DOC).read()
    doc = re.sub(r"<!-- BEGIN MEASURED -->.*<!-- END MEASURED -->", block, doc, flags=re.S)
    open(DOC, "w").write(doc)
    print(block)


if __name__ == "__main__":
    main()
