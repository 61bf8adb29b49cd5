"""`contextplane mcp --http` and a client that sends half a request head and then
nothing: the connection is dropped once the services' request-head deadline passes (the
SDK's own uvicorn set-up held it for good, so a few thousand such clients took every
descriptor), and the server still answers an MCP client and stops cleanly on SIGTERM."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.support.broker import free_port
from tests.support.wait import wait_until

# The request-head deadline, lowered from its 30 s default so the test waits seconds.
REQUEST_HEAD_MS = 2_000
REQUEST_HEAD_S = REQUEST_HEAD_MS / 1000
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "hostile", "version": "1"},
    },
}


def _initialize(port: int) -> int:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/mcp",
        data=json.dumps(INITIALIZE).encode(),
        headers={
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
        },
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert b'"serverInfo"' in response.read()
        return response.status


def test_a_stalled_request_head_is_dropped(tmp_path: Path) -> None:
    port = free_port()
    log_path = tmp_path / "mcp.log"
    command = [
        sys.executable, "-m", "contextplane.cli.main", "mcp", "--bootstrap", "127.0.0.1:1",
        "--context-url", "http://127.0.0.1:1", "--executor-url", "http://127.0.0.1:1",
        "--http", str(port), "--request-head-timeout-ms", str(REQUEST_HEAD_MS),
    ]  # fmt: skip
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:

        def listening() -> bool:
            assert process.poll() is None, log_path.read_text()
            with socket.socket() as probe:
                return probe.connect_ex(("127.0.0.1", port)) == 0

        wait_until(listening, 60, "contextplane mcp --http listens")
        # Dropped before this timeout, which is shorter than the default deadline: the
        # lowered one is the one applied.
        with socket.create_connection(("127.0.0.1", port), timeout=20) as stalled:
            stalled.sendall(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            began = time.monotonic()
            while stalled.recv(4096):  # an answer (408) or none, then the close
                pass
            waited_s = time.monotonic() - began
        assert waited_s > REQUEST_HEAD_S / 2, f"dropped after {waited_s:.1f} s, not by the deadline"
        assert _initialize(port) == 200
    finally:
        process.terminate()
        assert process.wait(60) == 0, log_path.read_text()
