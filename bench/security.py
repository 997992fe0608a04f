#!/usr/bin/env python3
"""Plays each attack of docs/security.md against the release binary on 127.0.0.1
and measures what it leaves: RSS before and after, connections still open,
how long the server took to close them, whether other users were served.
Writes the table into docs/security.md between its BEGIN/END markers.

Run: bench/security.sh (builds, then runs this). Loopback only, bounded in time.
"""
import datetime
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
            # As aws.Dockerfile sets it.
            "MALLOC_ARENA_MAX": "2",
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


def unread_batches(emu):
    s = Server(emu, MAX_INFLIGHT_INVOCATIONS="4", IDLE_TIMEOUT="15s")
    before = s.rss()
    body = json.dumps({"inputs": [f"[{i + 1}CH3]O" for i in range(6000)], "beam": 10, "n_best": 10,
                       "attention": True}).encode()
    socks = []
    for _ in range(30):
        x = socket.socket()
        x.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        x.connect(("127.0.0.1", s.port))
        x.sendall(b"POST /api/v1/translate/batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        socks.append(x)
    time.sleep(3)  # let them stall (this is a measurement, not a test)
    req = urllib.request.Request(s.url("/api/v1/translate/batch"),
                                 data=json.dumps({"inputs": ["CCO"] * 200, "n_best": 1}).encode(),
                                 headers={"content-type": "application/json"})
    start = time.time()
    try:
        text = urllib.request.urlopen(req, timeout=200).read().decode()
        summary = json.loads(text.strip().splitlines()[-1])
        ok = summary.get("failed") == 0 and summary.get("succeeded") == 200
    except Exception:
        ok = False
    took = time.time() - start
    # (Their sockets hold unread bytes, so EOF is not visible from here: ask the server.)
    t = wait_until(lambda: s.metric("http_connections_open") == 0, 200)
    peak = int(open(f"/proc/{s.proc.pid}/status").read().split("VmHWM:")[1].split()[0]) / 1024
    row(f"30 batches whose clients never read (peak RSS {peak:.1f} MB)", before, s.rss(),
        f"{s.metric('lambda_invocations_in_flight'):.0f} invocations held after",
        f"closed in {t:.0f} s" if t is not None else "not closed", ok,
        f"a 200-row batch done in {took:.1f} s; IDLE_TIMEOUT 15s (75s by default)")
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
        for attack in (method_flood, bare_connects, slowloris, slow_bodies, half_sent_at_shutdown, unread_batches,
                       worst_request):
            attack(emu_port)
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
