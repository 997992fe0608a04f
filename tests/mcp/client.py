#!/usr/bin/env python3
"""The MCP tool server (`/mcp`) checked with the official Python MCP SDK.

Starts the debug binaries `cargo test` built (the service and the Lambda
emulator, so predictions go through the real aws-sdk-lambda path), connects
over Streamable HTTP as an agent's MCP client does, lists the tools, calls
each, and checks the answers against the JSON API's for the same inputs.
Then, with API keys in force and no anonymous callers, a client without a key
is refused and one with a key works and is charged.

Run from the repository root: python3 tests/mcp/client.py
"""

import asyncio
import base64
import json
import os
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request

from mcp import ClientSession
from mcp.client.streamable_http import streamablehttp_client

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests/support"))
from local import free_port, wait_for  # noqa: E402
BIN = os.path.join(ROOT, "target/debug/translation-front")
EMU = os.path.join(ROOT, "target/debug/examples/lambda-emulator")


def post_json(url, body, headers=None):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"content-type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


class Service:
    def __init__(self, emulator_port, **env):
        self.port, self.metrics_port = free_port(), free_port()
        e = dict(os.environ)
        e.update(
            LISTEN_ADDR=f"127.0.0.1:{self.port}",
            METRICS_ADDR=f"127.0.0.1:{self.metrics_port}",
            TRANSLATION_FUNCTION="translation",
            AWS_ENDPOINT_URL_LAMBDA=f"http://127.0.0.1:{emulator_port}",
            AWS_EC2_METADATA_DISABLED="true",
            AWS_REGION="us-east-1",
            AWS_ACCESS_KEY_ID="local",
            AWS_SECRET_ACCESS_KEY="local",
            LOG_FORMAT="json",
            CACHE_TTL="0",
        )
        e.update(env)
        self.proc = subprocess.Popen([BIN], env=e, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.base = f"http://127.0.0.1:{self.port}"
        wait_for(self.base + "/readyz", "mcp")

    def metric(self, sample):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10) as r:
            for line in r.read().decode().splitlines():
                if line.startswith(sample + " "):
                    return float(line.split()[-1])
        return 0.0

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)


async def tools_and_api(svc):
    async with streamablehttp_client(svc.base + "/mcp") as (read, write, _):
        async with ClientSession(read, write) as session:
            await session.initialize()
            tools = {t.name: t for t in (await session.list_tools()).tools}
            assert set(tools) == {"predict_products", "canonicalize", "draw_molecule"}, set(tools)
            for t in tools.values():
                assert t.description and len(t.description) > 40, t
                assert t.inputSchema.get("type") == "object" and t.inputSchema.get("properties"), t.inputSchema
                assert t.outputSchema and t.outputSchema.get("properties"), (t.name, t.outputSchema)
            assert "reactants" in tools["predict_products"].inputSchema["required"]

            # predict_products against POST /api/v1/translate, same input.
            reactants = "OC(=O)c1ccccc1.CCO"
            called = await session.call_tool(
                "predict_products",
                {"reactants": reactants, "beam": 5, "n_best": 3, "expected_product": "CCOC(=O)c1ccccc1"},
            )
            assert not called.isError, called
            got = called.structuredContent
            status, api = post_json(svc.base + "/api/v1/translate",
                                    {"text": reactants, "beam": 5, "n_best": 3, "attention": False,
                                     "target": "CCOC(=O)c1ccccc1"})
            assert status == 200, api
            assert got["reactants_canonical"] == api["canonical"], (got, api["canonical"])
            want = [(p["rank"], p["canonical"], round(p["probability"], 12)) for p in api["predictions"]]
            have = [(p["rank"], p["smiles"], round(p["probability"], 12)) for p in got["products"]]
            assert have == want, (have, want)
            assert got["correct_rank"] == api["target"]["correct_rank"], (got, api["target"])
            assert all(p["valid"] == (p["smiles"] is not None) for p in got["products"])

            # canonicalize against the API's canonical form of the same input.
            called = await session.call_tool("canonicalize", {"smiles": "C(C)O.O"})
            assert not called.isError and called.structuredContent == {"canonical": "CCO.O"}, called
            status, api = post_json(svc.base + "/api/v1/translate", {"text": "C(C)O.O", "attention": False})
            assert api["canonical"] == "CCO.O", api
            called = await session.call_tool("canonicalize", {"smiles": "C1CC"})
            assert called.isError, called
            words = called.content[0].text
            assert "C1CC" in words and "{" not in words, f"an error in plain words: {words}"

            # draw_molecule: an image a client can show, the same drawing as /api/v1/depict.
            called = await session.call_tool("draw_molecule", {"smiles": "c1ccccc1O"})
            assert not called.isError, called
            images = [c for c in called.content if c.type == "image"]
            assert len(images) == 1 and images[0].mimeType == "image/svg+xml", called.content
            svg = base64.b64decode(images[0].data).decode()
            with urllib.request.urlopen(svc.base + "/api/v1/depict?smiles=c1ccccc1O", timeout=10) as r:
                assert r.read().decode() == svg, "the same drawing as the API's"
            assert called.structuredContent["canonical"] == "Oc1ccccc1", called.structuredContent
            called = await session.call_tool("draw_molecule", {"smiles": "CCO", "width": 5})
            assert called.isError and "width and height must be between" in called.content[0].text.lower(), called
    return "3 tools listed with input and output schemas; each called and checked against the JSON API"


async def keys(svc, key):
    refused = None
    try:
        async with streamablehttp_client(svc.base + "/mcp") as (read, write, _):
            async with ClientSession(read, write) as session:
                await session.initialize()
    except Exception as e:  # noqa: BLE001 - the SDK raises the HTTP error inside a task group
        refused = e
    assert refused is not None and "401" in repr(refused) + str(getattr(refused, "exceptions", "")), repr(refused)

    headers = {"Authorization": f"Bearer {key}"}
    async with streamablehttp_client(svc.base + "/mcp", headers=headers) as (read, write, _):
        async with ClientSession(read, write) as session:
            await session.initialize()
            called = await session.call_tool("predict_products", {"reactants": "CCO.CC(=O)O", "n_best": 2})
            assert not called.isError, called
            called = await session.call_tool("predict_products", {"reactants": "CCN.CC(=O)Cl", "n_best": 2})
            assert called.isError and "daily quota is 1 inputs" in called.content[0].text, called
    assert svc.metric('api_key_inputs_total{key="agent"}') == 1.0
    return "without a key: 401; with a key: served, and its quota kept (one call under it, one over)"


def main():
    emu_port = free_port()
    emulator = subprocess.Popen([EMU, "--port", str(emu_port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        svc = Service(emu_port)
        try:
            said = asyncio.run(tools_and_api(svc))
        finally:
            svc.stop()
        out = subprocess.run([BIN, "key", "new", "--name", "agent"], capture_output=True, text=True, check=True)
        key = out.stdout.splitlines()[0]
        entry = out.stdout[out.stdout.index("[[key]]"):].replace("# daily_inputs = 10000", "daily_inputs = 1")
        with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as f:
            f.write(entry)
        svc = Service(emu_port, API_KEYS_FILE=f.name, ANONYMOUS_RATE="0")
        try:
            said_keys = asyncio.run(keys(svc, key))
        finally:
            svc.stop()
            os.unlink(f.name)
    finally:
        emulator.terminate()
        emulator.wait(timeout=30)
    print(f"mcp: official Python SDK over Streamable HTTP, Lambda emulator: {said}; {said_keys}")


if __name__ == "__main__":
    main()
