#!/usr/bin/env python3
"""The monitoring pack against a real Prometheus (Debian's `prometheus`).

Starts the Lambda emulator (throttling its first calls, so throttles are
counted) and the service on 127.0.0.1, and a Prometheus scraping the service's
metrics port every second with the labels a PodMonitor gives a pod
(namespace, pod, container). Sends a short load of distinct molecules, a
batch and a few bad requests; then evaluates, through Prometheus's HTTP API:

- every query of every panel of deploy/monitoring/grafana-dashboard.json, which
  must return data;
- every recording rule of deploy/monitoring/prometheus-rule.yml, which must
  return data; and every alert expression, which must be accepted, and each
  metric it names must have samples.

Series from kube-state-metrics (kube_*) cannot exist here: their queries are
only checked to be accepted. A renamed metric or a typo in a panel fails.
Usage: python3 tests/monitoring/live.py [debug|release]. Loopback only,
bounded in time, stops what it started.
"""
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROFILE = sys.argv[1] if len(sys.argv) > 1 else "debug"
BIN = os.path.join(ROOT, f"target/{PROFILE}/translation-front")
EMU = os.path.join(ROOT, f"target/{PROFILE}/examples/lambda-emulator")
NEEDS_KUBE = re.compile(r"\bkube_\w+")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(cond, limit, what):
    end = time.time() + limit
    while time.time() < end:
        try:
            if cond():
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"monitoring check: {what} did not happen within {limit} s")


def query(prom, expr):
    url = f"http://127.0.0.1:{prom}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        body = json.load(urllib.request.urlopen(url, timeout=10))
    except urllib.error.HTTPError as e:
        body = json.load(e)
    return body


def post(port, path, body):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(),
                                 headers={"content-type": "application/json"})
    try:
        return urllib.request.urlopen(req, timeout=30).read()
    except urllib.error.HTTPError as e:
        return e.read()


def main():
    prometheus = shutil.which("prometheus")
    if not prometheus:
        raise SystemExit("monitoring check: prometheus is not installed (apt-get install prometheus)")
    work = tempfile.mkdtemp(prefix="tf-monitoring-")
    emu_port, port, metrics_port, prom_port = free_port(), free_port(), free_port(), free_port()
    started = []
    try:
        started.append(subprocess.Popen([EMU, "--port", str(emu_port), "--latency-ms", "20", "--throttle-first", "3"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        env = dict(os.environ, LISTEN_ADDR=f"127.0.0.1:{port}", METRICS_ADDR=f"127.0.0.1:{metrics_port}",
                   TRANSLATION_FUNCTION="translation", AWS_ENDPOINT_URL_LAMBDA=f"http://127.0.0.1:{emu_port}",
                   AWS_REGION="us-east-1", AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="y",
                   AWS_EC2_METADATA_DISABLED="true", LOG_FORMAT="json", RUST_LOG="warn")
        started.append(subprocess.Popen([BIN], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [{
                "job_name": "translation",
                "static_configs": [{
                    "targets": [f"127.0.0.1:{metrics_port}"],
                    # What a PodMonitor's target carries.
                    "labels": {"namespace": "translation", "pod": "translation-local", "container": "translation-front"},
                }],
            }],
        }
        with open(os.path.join(work, "prometheus.yml"), "w") as f:
            yaml.safe_dump(config, f)
        started.append(subprocess.Popen(
            [prometheus, f"--config.file={work}/prometheus.yml", f"--storage.tsdb.path={work}/data",
             f"--web.listen-address=127.0.0.1:{prom_port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_until(lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2).status == 200,
                   30, "the service answering")
        # Until its storage is open Prometheus answers 503 in plain text, not
        # the API's JSON: wait for it to say it is ready.
        wait_until(lambda: urllib.request.urlopen(f"http://127.0.0.1:{prom_port}/-/ready", timeout=2).status == 200,
                   60, "Prometheus ready")
        wait_until(lambda: query(prom_port, 'up{job="translation"} == 1')["data"]["result"], 60,
                   "Prometheus scraping the service")
        # What the panels show: translations, a batch, errors, throttles.
        for text in ["", "not a molecule ((", "C" * 5000]:
            post(port, "/api/v1/translate", {"text": text})
        post(port, "/api/v1/translate/batch", {"inputs": ["CCO", "CCN", "CCC", "nonsense(("], "n_best": 1})
        subprocess.run([BIN, "loadtest", "--url", f"http://127.0.0.1:{port}", "--rate", "20", "--duration", "15s",
                        "--max-inflight", "50", "--quiet", "--json"], check=True, stdout=subprocess.DEVNULL)
        time.sleep(3)  # the last samples scraped (scrape interval 1 s)

        failures, checked = [], 0
        dashboard = json.load(open(os.path.join(ROOT, "deploy/monitoring/grafana-dashboard.json")))
        for panel in dashboard["panels"]:
            for target in panel["targets"]:
                expr = target["expr"].replace("$namespace", "translation").replace("$__rate_interval", "1m")
                answer = query(prom_port, expr)
                checked += 1
                if answer.get("status") != "success":
                    failures.append(f"panel {panel['title']!r}: {expr}: {answer.get('error')}")
                elif not answer["data"]["result"] and not NEEDS_KUBE.search(expr):
                    failures.append(f"panel {panel['title']!r}: no data for {expr}")
        rule = next(d for d in yaml.safe_load_all(open(os.path.join(ROOT, "deploy/monitoring/prometheus-rule.yml"))) if d)
        for group in rule["spec"]["groups"]:
            for r in group["rules"]:
                expr, name = r["expr"], r.get("record") or r.get("alert")
                answer = query(prom_port, expr)
                checked += 1
                if answer.get("status") != "success":
                    failures.append(f"rule {name}: {answer.get('error')}")
                    continue
                if "record" in r:
                    if not answer["data"]["result"]:
                        failures.append(f"recording rule {name}: no data")
                    continue
                for metric in sorted(set(re.findall(r"\b([a-z_]+(?:_total|_seconds_bucket|_seconds_count|_limit|_in_flight|up))\b", expr))):
                    if NEEDS_KUBE.match(metric):
                        continue
                    if not query(prom_port, f'count({{__name__="{metric}"}})')["data"]["result"]:
                        failures.append(f"alert {name}: no samples of {metric}")
        print(f"monitoring check: {checked} queries through Prometheus, {len(failures)} failed")
        for f in failures:
            print("  " + f)
        sys.exit(1 if failures else 0)
    finally:
        for p in reversed(started):
            p.terminate()
        for p in started:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
