#!/usr/bin/env python3
"""A rehearsal of scale events through a real load balancer, on one machine.

HAProxy (health-checking /readyz every second, like the NLB but faster) stands
in front of replicas of the release binary on 127.0.0.1, which call the Lambda
emulator. `translation-front loadtest` sends a steady rate through HAProxy
while the script scales up (a replica added), rolls out (each old replica
replaced by a new one once HAProxy sees the new one up), scales down (SIGTERM),
and runs a long batch across a scale-down (it must resume and complete).
The last line printed is a JSON summary; the exit status is 1 on any failed
request or lost batch row.

With --nlb the balancer behaves as an AWS NLB does with IP targets: a removed
replica keeps getting new connections for N = 120 s / --time-scale after its
removal, whatever its health (HAProxy's health check of it is turned off, then
the server put in maintenance N s later), and a removed replica is a deleted
pod: it keeps serving for its preStop sleep before SIGTERM. The budget is
kubernetes.yml's, scaled by --time-scale (preStop 130 s, SHUTDOWN_GRACE 15 s);
--old-budget plays the former one (15 s and 45 s), which the NLB outlasts.

With --hpa it then plays the HorizontalPodAutoscaler: a load ramp, the
Kubernetes HPA algorithm (desired = ceil(current x utilization / target), 10%
tolerance, kubernetes.yml's behavior with its windows scaled down by
--time-scale) applied to the replicas' CPU read from their /metrics, and a
picture of replicas, request rate and p99 over time in docs/rehearsal-hpa.png.

Loopback only; every wait is bounded; everything started is stopped.
"""
import argparse
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# release (bench/rehearse.sh builds it) or debug (what `cargo test` built: CI's short form)
PROFILE = os.environ.get("REHEARSE_PROFILE", "release")
BIN = os.path.join(ROOT, f"target/{PROFILE}/translation-front")
EMU = os.path.join(ROOT, f"target/{PROFILE}/examples/lambda-emulator")
GRACE_S = 5  # SHUTDOWN_GRACE: well past HAProxy's 2 x 1 s to see a 503
SLOTS = 12


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(cond, limit, what):
    end = time.time() + limit
    while time.time() < end:
        if cond():
            return
        time.sleep(0.05)
    raise SystemExit(f"rehearsal: {what} did not happen within {limit} s")


def get(url, timeout=5):
    return urllib.request.urlopen(url, timeout=timeout).read().decode()


class Replica:
    def __init__(self, name, port, env):
        self.name, self.port, self.metrics_port = name, port, free_port()
        e = dict(env)
        e.update(LISTEN_ADDR=f"127.0.0.1:{port}", METRICS_ADDR=f"127.0.0.1:{self.metrics_port}")
        self.proc = subprocess.Popen([BIN], env=e, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def cpu(self):
        for line in get(f"http://127.0.0.1:{self.metrics_port}/metrics").splitlines():
            if line.startswith("process_cpu_seconds_total "):
                return float(line.split()[1])
        return 0.0

    def metric(self, prefix):
        try:
            for line in get(f"http://127.0.0.1:{self.metrics_port}/metrics").splitlines():
                if line.startswith(prefix):
                    return float(line.rsplit(" ", 1)[1])
        except OSError:
            pass
        return 0.0

    def term(self):
        self.proc.send_signal(signal.SIGTERM)

    def wait_exit(self, limit=90):
        try:
            return self.proc.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise SystemExit(f"rehearsal: {self.name} did not exit within {limit} s of SIGTERM")


class Balancer:
    """HAProxy with SLOTS server slots; a slot whose replica is not running
    (or answers /readyz with 503) is DOWN and gets no traffic."""

    def __init__(self, ports, workdir):
        self.port = free_port()
        self.sock = os.path.join(workdir, "haproxy.sock")
        servers = "\n".join(
            f"    server s{i} 127.0.0.1:{p} check inter 1s fall 2 rise 2" for i, p in enumerate(ports))
        cfg = f"""
global
    stats socket {self.sock} level admin
    maxconn 4096
defaults
    mode http
    timeout connect 2s
    timeout client 150s
    timeout server 150s
    option http-server-close
    retries 0
frontend fe
    bind 127.0.0.1:{self.port}
    default_backend be
backend be
    balance roundrobin
    option httpchk GET /readyz
{servers}
"""
        path = os.path.join(workdir, "haproxy.cfg")
        with open(path, "w") as f:
            f.write(cfg)
        self.proc = subprocess.Popen([shutil.which("haproxy"), "-f", path, "-db"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: os.path.exists(self.sock), 10, "HAProxy start")

    def states(self):
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(self.sock)
            s.sendall(b"show stat\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        lines = data.decode().splitlines()
        header = lines[0].lstrip("# ").split(",")
        out = {}
        for line in lines[1:]:
            row = dict(zip(header, line.split(",")))
            if row.get("pxname") == "be" and row.get("svname", "").startswith("s"):
                out[int(row["svname"][1:])] = row["status"]
        return out

    def command(self, cmd):
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(self.sock)
            s.sendall(cmd.encode() + b"\n")
            answer = b""
            while chunk := s.recv(65536):
                answer += chunk
        return answer.decode().strip()

    def keep_sending(self, slot):
        """As an NLB after deregistration: new connections go on reaching
        the slot whatever its health checks say."""
        self.command(f"disable health be/s{slot}")

    def stop_sending(self, slot):
        self.command(f"set server be/s{slot} state maint")

    def up(self, slot):
        return self.states().get(slot, "").startswith("UP")

    def stop(self):
        self.proc.kill()
        self.proc.wait()


class Nlb:
    """The NLB's timing and the pod's budget, in seconds (scaled)."""

    def __init__(self, keeps_sending, prestop):
        self.keeps_sending, self.prestop = keeps_sending, prestop


class Fleet:
    def __init__(self, env, balancer, ports, nlb=None):
        self.env, self.lb, self.ports, self.nlb = env, balancer, ports, nlb
        self.replicas = {}  # slot -> Replica
        self.next_slot = 0
        self.events = []

    def add(self):
        slot = self.next_slot
        self.next_slot += 1
        self.replicas[slot] = Replica(f"r{slot}", self.ports[slot], self.env)
        wait_until(lambda: self.lb.up(slot), 30, f"HAProxy seeing r{slot} up")
        return slot

    def remove(self, slot, wait=True):
        r = self.replicas.pop(slot)
        if self.nlb:
            # A deleted pod behind an NLB: the balancer still sends for
            # keeps_sending s; the pod serves on for its preStop, then SIGTERM.
            self.lb.keep_sending(slot)
            threading.Timer(self.nlb.keeps_sending, self.lb.stop_sending, args=(slot,)).start()
            if not wait:
                threading.Timer(self.nlb.prestop, r.term).start()
                return r
            time.sleep(self.nlb.prestop)
        r.term()
        if wait:
            code = r.wait_exit()
            if code != 0:
                raise SystemExit(f"rehearsal: r{slot} exited {code}")
        return r

    def event(self, what):
        self.events.append({"t_s": round(time.time() - self.t0, 1), "event": what, "replicas": len(self.replicas)})
        print(f"[{self.events[-1]['t_s']:6.1f}s] {what} ({len(self.replicas)} replicas)", file=sys.stderr, flush=True)

    def stop_all(self):
        for r in self.replicas.values():
            r.proc.kill()
            r.proc.wait()
        self.replicas.clear()


def long_batch(lb_port, rows, out):
    """Sends `rows` inputs as one batch through the balancer; on an
    `interrupted` line, sends the rest again (to whichever replica HAProxy
    picks). Records every index received."""
    inputs = [f"[{i + 1}CH3]O" for i in range(rows)]
    received, offset, resumed = set(), 0, 0
    while offset < rows:
        body = json.dumps({"inputs": inputs[offset:], "n_best": 1}).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{lb_port}/api/v1/translate/batch", data=body,
                                     headers={"content-type": "application/json"})
        resume = None
        with urllib.request.urlopen(req, timeout=150) as r:
            for line in r:
                msg = json.loads(line)
                if msg["type"] == "result" and "error" not in msg:
                    received.add(offset + msg["index"])
                elif msg["type"] == "interrupted":
                    resume = offset + msg["resume_from"]
        if resume is None:
            break
        offset, resumed = resume, resumed + 1
    out.update(rows_sent=rows, rows_received=len(received), resumed=resumed)


def loadtest(lb_port, args, extra):
    cmd = [BIN, "loadtest", "--url", f"http://127.0.0.1:{lb_port}", "--json", "--max-inflight", "500",
           "--timeout", "30s"] + extra + args
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def scale_events(fleet, lb, rate, batch_rows, duration):
    fleet.t0 = time.time()
    for _ in range(2):
        fleet.add()
    fleet.event("start: 2 replicas up")
    load = loadtest(lb.port, ["--rate", str(rate), "--duration", f"{duration}s", "--quiet"], [])
    time.sleep(4)
    fleet.add()
    fleet.event("scale up: +1")
    time.sleep(4)
    for old in sorted(fleet.replicas)[:3]:
        fleet.add()
        fleet.remove(old)
        fleet.event(f"rollout: r{old} replaced")
    # A long batch, then scale down the replica that serves it.
    batch = {}
    t = threading.Thread(target=long_batch, args=(lb.port, batch_rows, batch))
    t.start()
    serving = []
    wait_until(lambda: serving.extend(s for s, r in fleet.replicas.items()
                                      if r.metric('translated_inputs_total{path="batch"}') > 0) or serving,
               30, "the batch reaching a replica")
    fleet.remove(serving[0], wait=False)
    fleet.event(f"scale down during the batch: r{serving[0]} removed")
    t.join(timeout=300)
    fleet.event(f"batch done: {batch.get('rows_received')} of {batch_rows} rows, resumed {batch.get('resumed')}x")
    fleet.add()
    fleet.event("scale up: +1")
    fleet.remove(sorted(fleet.replicas)[0])
    fleet.event("scale down: -1")
    out, err = load.communicate(timeout=duration + 60)
    report = json.loads(out)
    return report, batch


def hpa_play(fleet, lb, scale, plot_path, slots_signal=False, stages="10s:20,30s:400,30s:400,10s:20,40s:20"):
    """The HPA algorithm on measured CPU, windows divided by `scale`; with
    `slots_signal` also on the share of invocation slots in use
    (deploy/hpa-slots.yml: target 0.5), the larger proposal winning."""
    sync = 15 / scale
    down_window = 300 / scale
    target, request_cores, tolerance = 0.75, 0.25, 0.1
    slots_target = 0.5
    lo, hi = 2, 6
    while len(fleet.replicas) < lo:
        fleet.add()
    fleet.t0 = time.time()
    series_path = os.path.join(tempfile.mkdtemp(prefix="tf-hpa-"), "series.jsonl")
    load = loadtest(lb.port, ["--stages", stages, "--out", series_path], [])
    slot_s = {s: r.metric("lambda_invocation_slot_seconds_total ") for s, r in fleet.replicas.items()}
    series, recommendations = [], []
    cpu = {s: r.cpu() for s, r in fleet.replicas.items()}
    last_scale = time.time()
    start = time.time()
    progress = []

    def read_progress():
        for line in load.stderr:
            parts = line.split()
            try:
                progress.append((time.time() - start, float(parts[4].split("/")[0]), float(parts[12])))
            except (IndexError, ValueError):
                pass

    threading.Thread(target=read_progress, daemon=True).start()
    while load.poll() is None:
        time.sleep(sync)
        now = time.time()
        utils, slot_utils = [], []
        for s, r in list(fleet.replicas.items()):
            try:
                c = r.cpu()
            except OSError:
                continue
            utils.append((c - cpu.get(s, c)) / (sync * request_cores))
            cpu[s] = c
            held = r.metric("lambda_invocation_slot_seconds_total ")
            limit = r.metric("lambda_invocations_limit ") or 1.0
            slot_utils.append((held - slot_s.get(s, held)) / (sync * limit))
            slot_s[s] = held
        current = len(fleet.replicas)
        usage = sum(utils) / len(utils) if utils else 0.0
        slot_usage = sum(slot_utils) / len(slot_utils) if slot_utils else 0.0
        proposals = [(usage / target, "cpu")]
        if slots_signal:
            proposals.append((slot_usage / slots_target, "slots"))
        ratio, why = max(proposals)
        desired = current if abs(ratio - 1) <= tolerance else math.ceil(current * ratio)
        desired = max(lo, min(hi, desired))
        recommendations.append((now, desired))
        # Scale-down stabilization: the highest recommendation of the window.
        window = [d for t, d in recommendations if now - t <= down_window]
        if desired < current:
            desired = max(window)
        if desired > current:
            desired = min(desired, max(current * 2, current + 4))
            for _ in range(desired - current):
                slot = fleet.add()
                cpu[slot] = fleet.replicas[slot].cpu()
            fleet.event(f"hpa: {current} -> {desired} on {why} (cpu {usage:.0%} of request, slots {slot_usage:.0%})")
        elif desired < current and now - last_scale >= 60 / scale:
            step = max(1, min(current - desired, math.ceil(current * 0.5)))
            for slot in sorted(fleet.replicas)[:step]:
                fleet.remove(slot, wait=False)
            fleet.event(f"hpa: {current} -> {current - step} (cpu {usage:.0%} of request, slots {slot_usage:.0%})")
            last_scale = now
        series.append((now - start, len(fleet.replicas), usage, slot_usage))
    out, _ = load.communicate(timeout=60)
    report = json.loads(out)
    seconds = [json.loads(line) for line in open(series_path) if line.startswith("{")]
    overloaded = [(x["t"], sum(n for k, n in x.get("errors_by_kind", {}).items() if k.startswith("503")))
                  for x in seconds if "t" in x]
    first_503 = next((t for t, n in overloaded if n > 0), None)
    first_up = next((e["t_s"] for e in fleet.events if e["event"].startswith("hpa: ") and "->" in e["event"]
                     and int(e["event"].split()[1]) < int(e["event"].split()[3])), None)
    report["first_503_s"], report["first_scale_up_s"] = first_503, first_up
    report["overloaded_503"] = sum(n for _, n in overloaded)
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("rehearsal: matplotlib is not installed (pip install matplotlib); no picture", file=sys.stderr)
        return report, series
    fig, ax = plt.subplots(4, 1, figsize=(8, 9), sharex=True)
    ax[0].step([s[0] for s in series], [s[1] for s in series], where="post")
    ax[0].set_ylabel("replicas")
    ax[1].plot([x["t"] for x in seconds if "t" in x], [x.get("completed", 0) for x in seconds if "t" in x])
    ax[1].set_ylabel("answered / s")
    ax[2].plot([s[0] for s in series], [s[2] for s in series], label="CPU / request (target 75%)")
    ax[2].plot([s[0] for s in series], [s[3] for s in series], label="slots in use (target 50%)")
    ax[2].set_ylabel("share")
    ax[2].legend(loc="upper right", fontsize=8)
    ax[3].bar([t for t, _ in overloaded], [n for _, n in overloaded], width=0.8, color="tab:red")
    ax[3].set_ylim(bottom=0, top=max([n for _, n in overloaded] + [1]) * 1.1)
    ax[3].set_ylabel("503 overloaded / s")
    ax[3].set_xlabel(f"seconds (HPA windows / {scale:g})")
    signal = "CPU and invocation slots" if slots_signal else "CPU only"
    fig.suptitle(f"HPA rehearsal through HAProxy, scaling on {signal}")
    fig.tight_layout()
    fig.savefig(plot_path, dpi=90)
    return report, series


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=float, default=40, help="steady request rate during the events")
    ap.add_argument("--batch-rows", type=int, default=20000, help="long enough to outlive SHUTDOWN_GRACE")
    ap.add_argument("--duration", type=int, default=60, help="seconds of steady load during the events")
    ap.add_argument("--hpa", action="store_true", help="also play the HPA on a load ramp and draw it")
    ap.add_argument("--time-scale", type=float, default=10,
                    help="HPA windows and, with --nlb, the NLB's timing and the drain budget divided by this")
    ap.add_argument("--slots-signal", action="store_true",
                    help="with --hpa: also scale on the share of invocation slots in use (deploy/hpa-slots.yml)")
    ap.add_argument("--function-ms", type=int, default=20, help="the emulated function's latency")
    ap.add_argument("--slots", type=int, default=0, help="MAX_INFLIGHT_INVOCATIONS per replica (0: the default)")
    ap.add_argument("--stages", default="10s:20,30s:400,30s:400,10s:20,40s:20", help="with --hpa: the load ramp")
    ap.add_argument("--only-hpa", action="store_true", help="skip the scale events; play only the HPA")
    ap.add_argument("--nlb", action="store_true",
                    help="the balancer keeps sending to a removed replica for 120 s (scaled), as an NLB does")
    ap.add_argument("--old-budget", action="store_true",
                    help="with --nlb: the former drain budget (preStop 15 s, SHUTDOWN_GRACE 45 s, scaled)")
    args = ap.parse_args()
    for path in (BIN, EMU):
        if not os.path.exists(path):
            raise SystemExit(f"rehearsal: {path} is missing; run bench/rehearse.sh")
    if not shutil.which("haproxy"):
        raise SystemExit("rehearsal: haproxy is not installed (apt-get install haproxy)")
    work = tempfile.mkdtemp(prefix="tf-rehearse-")
    emu_port = free_port()
    emu = subprocess.Popen([EMU, "--port", str(emu_port), "--latency-ms", str(args.function_ms)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    nlb, grace_ms = None, GRACE_S * 1000
    if args.nlb:
        # kubernetes.yml's budget (or the former one), scaled like the NLB.
        prestop, grace = (15, 45) if args.old_budget else (130, 15)
        nlb = Nlb(keeps_sending=120 / args.time_scale, prestop=prestop / args.time_scale)
        grace_ms = round(grace * 1000 / args.time_scale)
    env = {
        "PATH": os.environ.get("PATH", ""), "LOG_FORMAT": "json", "RUST_LOG": "warn",
        "AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y",
        "AWS_EC2_METADATA_DISABLED": "true", "TRANSLATION_FUNCTION": "translation",
        "AWS_ENDPOINT_URL_LAMBDA": f"http://127.0.0.1:{emu_port}", "SHUTDOWN_GRACE": f"{grace_ms}ms",
        "LAMBDA_FAN_OUT": "1", "LAMBDA_WARM_ON_VISIT": "0", "MAX_BATCH_INPUTS": "100000",
    }
    if args.slots:
        env["MAX_INFLIGHT_INVOCATIONS"] = str(args.slots)
    ports = [free_port() for _ in range(SLOTS)]
    lb = Balancer(ports, work)
    fleet = Fleet(env, lb, ports, nlb)
    summary = {}
    try:
        if args.only_hpa:
            report = {"scheduled": 0, "completed": 0, "errors": 0, "errors_by_kind": {}, "not_sent": 0,
                      "latency": {"p50_ms": None, "p99_ms": None}}
            batch = {}
        else:
            report, batch = scale_events(fleet, lb, args.rate, args.batch_rows, args.duration)
        summary = {
            "requests": report["scheduled"], "completed": report["completed"], "errors": report["errors"],
            "errors_by_kind": report["errors_by_kind"], "not_sent": report["not_sent"],
            "p50_ms": report["latency"]["p50_ms"], "p99_ms": report["latency"]["p99_ms"],
            "batch": batch, "events": fleet.events,
        }
        if nlb:
            summary["nlb"] = {"keeps_sending_s": nlb.keeps_sending, "prestop_s": nlb.prestop,
                              "shutdown_grace_s": grace_ms / 1000, "time_scale": args.time_scale}
        if args.hpa:
            fleet.events = []
            picture = "docs/rehearsal-hpa-slots.png" if args.slots_signal else "docs/rehearsal-hpa.png"
            if args.function_ms != 20 and not args.slots_signal:
                picture = "docs/rehearsal-hpa-cpu-only.png"
            hpa_report, series = hpa_play(fleet, lb, args.time_scale, os.path.join(ROOT, picture),
                                          args.slots_signal, args.stages)
            summary["hpa"] = {
                "requests": hpa_report["scheduled"], "errors": hpa_report["errors"],
                "errors_by_kind": hpa_report["errors_by_kind"],
                "p99_ms": hpa_report["latency"]["p99_ms"], "max_replicas": max(s[1] for s in series),
                "first_scale_up_s": hpa_report["first_scale_up_s"], "first_503_s": hpa_report["first_503_s"],
                "overloaded_503": hpa_report["overloaded_503"], "events": fleet.events,
            }
    finally:
        fleet.stop_all()
        lb.stop()
        emu.kill()
    lost = summary["batch"].get("rows_sent", 0) - summary["batch"].get("rows_received", 0)
    failed = summary["errors"] + summary.get("hpa", {}).get("errors", 0)
    summary["ok"] = failed == 0 and lost == 0 and summary["not_sent"] == 0
    print(json.dumps(summary))
    sys.exit(0 if summary["ok"] else 1)


if __name__ == "__main__":
    main()
