#!/usr/bin/env python3
"""The API contract, checked by tools no one here wrote.

Starts the debug binaries `cargo test` built (the service, and the Lambda
emulator example) on 127.0.0.1 and, for each configuration:

  1. validates GET /api/v1/openapi.json as OpenAPI 3.1 (openapi-spec-validator);
  2. runs schemathesis with every check on (status codes, content types,
     response schemas, headers, negative and positive data) against it;
  3. checks what schemathesis cannot: the NDJSON lines of real batches (JSON
     and multipart, with targets, an error row and a cached row) against the
     document's BatchLine schema, and the CSV's header.

Configurations: the demo backend in text and SMILES mode, and the real
aws-sdk-lambda client against the emulator (SMILES mode). What JSON Schema
cannot express is in schemathesis.toml / smiles.toml, and only there.

    python3 tests/contract/run.py [--max-examples N] [--seed S]
"""

import argparse
import json
import os
import re
import subprocess
import sys
import urllib.request

from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from referencing import Registry, Resource

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests/support"))
from local import free_port, wait_for  # noqa: E402
BIN = os.path.join(ROOT, "target/debug/translation-front")
EMU = os.path.join(ROOT, "target/debug/examples/lambda-emulator")
HERE = os.path.join(ROOT, "tests/contract")


def http(method, url, body=None, headers=None):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


class Service:
    def __init__(self, name, **env):
        self.name = name
        self.port = free_port()
        e = dict(os.environ)
        e.update(
            LISTEN_ADDR=f"127.0.0.1:{self.port}",
            METRICS_ADDR=f"127.0.0.1:{free_port()}",
            AWS_EC2_METADATA_DISABLED="true",
            AWS_REGION="us-east-1",
            AWS_ACCESS_KEY_ID="local",
            AWS_SECRET_ACCESS_KEY="local",
            LOG_FORMAT="json",
        )
        e.update(env)
        self.proc = subprocess.Popen([BIN], env=e, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.base = f"http://127.0.0.1:{self.port}"
        wait_for(self.base + "/readyz", "contract")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)


def validator(doc, schema_name):
    """A validator of components.schemas[schema_name], resolving the document's refs."""
    resource = Resource.from_contents({**doc, "$schema": "https://json-schema.org/draft/2020-12/schema"})
    registry = Registry().with_resource("urn:doc", resource)
    return Draft202012Validator({"$ref": f"urn:doc#/components/schemas/{schema_name}"}, registry=registry)


def check_batches(svc, doc, smiles):
    """Real NDJSON lines against BatchLine; the CSV header as documented."""
    lines_of = validator(doc, "BatchLine")
    good = ["CCO", "CC(=O)O.OCC"] if smiles else ["a b c", "d e"]
    bad = "C1CC" if smiles else "x" * 5000
    n = 0
    # Defaults (the multipart request below repeats them: cached), then with
    # attention and two results per row.
    for extra in [{}, {"n_best": 2, "attention": True}]:
        body = json.dumps({"inputs": good + [bad, good[0]], "targets": good + [good[0], good[1]], **extra}).encode()
        status, headers, out = http("POST", svc.base + "/api/v1/translate/batch", body,
                                    {"content-type": "application/json"})
        assert status == 200, (status, out[:300])
        assert headers["content-type"].startswith("application/x-ndjson"), headers
        lines = [json.loads(line) for line in out.decode().splitlines()]
        kinds = [line["type"] for line in lines]
        assert kinds[0] == "start" and kinds[-1] == "summary" and kinds.count("result") == 4, kinds
        assert any("error" in line for line in lines if line["type"] == "result"), "an error row"
        for line in lines:
            errors = sorted(lines_of.iter_errors(line), key=str)
            assert not errors, f"{svc.name}: a batch line does not match BatchLine: {line}\n{errors[0]}"
            n += 1
    # Multipart, as the batch page sends it.
    boundary = "contract-boundary"
    parts = "".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{name}.txt"\r\n'
        f"Content-Type: text/plain\r\n\r\n{text}\r\n"
        for name, text in [("inputs", "\n".join(good) + "\n"), ("targets", "\n".join(good) + "\n")]
    ) + f"--{boundary}--\r\n"
    status, headers, out = http("POST", svc.base + "/api/v1/translate/batch", parts.encode(),
                                {"content-type": f"multipart/form-data; boundary={boundary}"})
    assert status == 200, (status, out[:300])
    for line in out.decode().splitlines():
        errors = sorted(lines_of.iter_errors(json.loads(line)), key=str)
        assert not errors, f"{svc.name}: multipart batch line: {line}\n{errors[0]}"
        n += 1
    summary = json.loads(out.decode().splitlines()[-1])
    assert summary["cached"] == len(good), f"{svc.name}: the repeated rows came from the cache: {summary}"
    status, headers, out = http("POST", svc.base + "/api/v1/translate/batch?format=csv", body,
                                {"content-type": "application/json"})
    assert status == 200 and headers["content-type"].startswith("text/csv"), (status, headers)
    header = out.decode().split("\r\n", 1)[0]
    assert header == "line,source,rank,prediction,canonical,probability,target,correct,error", header
    assert header in doc["paths"]["/api/v1/translate/batch"]["post"]["description"].replace("`", "")
    return n


def check_limits(svc, doc, smiles, config):
    """Each limit the document states, at its boundary: accepted on it,
    refused one past it (schemathesis rarely generates a 2,000-character
    string). In SMILES mode the characters are one atom and spaces (which
    the service removes), so MAX_ATOMS, checked at its own boundary from
    /api/v1/config, does not come first."""
    schemas = doc["components"]["schemas"]
    text = schemas["TranslateInput"]["properties"]["text"]
    beam = schemas["TranslateInput"]["properties"]["beam"]
    items = schemas["BatchRequest"]["properties"]["inputs"]
    unit = "C" if smiles else "a"

    def translate(**fields):
        body = {"text": unit, "beam": 1, "n_best": 1, "attention": False, **fields}
        return http("POST", svc.base + "/api/v1/translate", json.dumps(body).encode(),
                    {"content-type": "application/json", "cache-control": "no-cache"})[0]

    def batch(n):
        body = {"inputs": [unit] * n, "beam": 1, "n_best": 1}
        return http("POST", svc.base + "/api/v1/translate/batch", json.dumps(body).encode(),
                    {"content-type": "application/json"})[0]

    def long(n):
        return unit + " " * (n - 1) if smiles else unit * n

    cases = [
        ("text at maxLength", translate(text=long(text["maxLength"])), 200),
        ("text past maxLength", translate(text=long(text["maxLength"] + 1)), 413),
        ("beam at maximum", translate(beam=beam["maximum"]), 200),
        ("beam past maximum", translate(beam=beam["maximum"] + 1), 400),
        ("beam 2.0, a whole number", translate(beam=2.0, n_best=2), 200),
        ("n_best at the beam", translate(beam=3, n_best=3), 200),
        ("n_best past the beam", translate(beam=3, n_best=4), 400),
        ("inputs at maxItems", batch(items["maxItems"]), 200),
        ("inputs past maxItems", batch(items["maxItems"] + 1), 413),
    ]
    if smiles:
        atoms = config["limits"]["max_atoms"]
        cases += [
            ("atoms at max_atoms", translate(text="C" * atoms), 200),
            ("atoms past max_atoms", translate(text="C" * (atoms + 1)), 413),
        ]
    wrong = [f"{what}: {got}, documented {want}" for what, got, want in cases if got != want]
    assert not wrong, f"{svc.name}: " + "; ".join(wrong)
    return len(cases)


def run(svc, config, args):
    status, _, raw = http("GET", svc.base + "/api/v1/openapi.json")
    assert status == 200, status
    doc = json.loads(raw)
    assert doc["openapi"].startswith("3.1"), doc["openapi"]
    validate(doc)
    settings = json.loads(http("GET", svc.base + "/api/v1/config")[2])
    smiles = settings["input_format"] == "smiles"
    lines = check_batches(svc, doc, smiles)
    limits = check_limits(svc, doc, smiles, settings)
    cmd = ["schemathesis", "--config-file", os.path.join(HERE, config), "run", svc.base + "/api/v1/openapi.json",
           "--checks", "all", "--max-examples", str(args.max_examples), "--seed", str(args.seed),
           "--no-color"]
    hooks = dict(os.environ, SCHEMATHESIS_HOOKS="hooks", PYTHONPATH=HERE + os.pathsep + os.environ.get("PYTHONPATH", ""))
    result = subprocess.run(cmd, capture_output=True, text=True, env=hooks)
    tail = [line for line in result.stdout.splitlines() if line.strip()][-12:]
    if result.returncode != 0:
        print(result.stdout[-20000:])
        sys.exit(f"contract: schemathesis failed on {svc.name}")
    cases = next((line.strip() for line in tail if re.search(r"\d+ generated", line)), "?")
    print(f"contract: {svc.name}: OpenAPI 3.1 valid; {lines} batch lines match BatchLine; {limits} limits hold "
          f"at their boundaries; schemathesis: {cases}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--max-examples", type=int, default=100)
    parser.add_argument("--seed", type=int, default=20261130)
    args = parser.parse_args()
    for path in (BIN, EMU):
        if not os.path.exists(path):
            sys.exit(f"contract: {path} is missing; cargo test builds it")
    emu_port = free_port()
    emu = subprocess.Popen([EMU, "--port", str(emu_port)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    emu.stdout.readline()
    services = []
    try:
        for name, config, env in [
            ("demo backend, text mode", "schemathesis.toml", {"INPUT_FORMAT": "text"}),
            ("demo backend, SMILES mode", "smiles.toml", {}),
            ("Lambda emulator through aws-sdk-lambda, SMILES mode", "smiles.toml",
             {"TRANSLATION_FUNCTION": "translation", "AWS_ENDPOINT_URL_LAMBDA": f"http://127.0.0.1:{emu_port}"}),
        ]:
            svc = Service(name, **env)
            services.append(svc)
            run(svc, config, args)
    finally:
        for svc in services:
            svc.stop()
        emu.terminate()
        emu.wait(timeout=30)
    print(f"contract: {len(services)} configurations passed")


if __name__ == "__main__":
    main()
