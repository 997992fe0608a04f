"""Helpers the Python checks share (tests/contract/run.py, tests/mcp/client.py):
a free loopback port, and waiting for a server to answer."""

import socket
import sys
import time
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url, who, limit=30):
    """Returns once `url` answers 200; exits naming `who` after `limit` seconds."""
    deadline = time.monotonic() + limit
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            if time.monotonic() > deadline:
                sys.exit(f"{who}: {url} did not come up")
            time.sleep(0.1)
