"""A flood of HTTP Basic requests with wrong passwords at the schema registry of
`contextplane up` (each a PBKDF2 of 16,384 iterations): the broker beside it still
decodes a large request at once (the checks ran on the event loop's default executor,
which the broker shares, and a large request waited behind hundreds of them), and an
unknown user is answered as a wrong password is."""

from __future__ import annotations

import asyncio
import base64
import resource
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from contextplane.protocol.build import build
from contextplane.protocol.codec import request_schema
from tests.e2e.test_registry_auth import running_up
from tests.support.cli import contextplane
from tests.support.rawclient import RawClient

METADATA = 3
# Connections sending wrong passwords at once, each again as soon as it is answered
# (under the registry's 1,000 connections).
FLOOD_CONNECTIONS = 600
FLOOD_S = 12.0
# A liveness bound for a busy 2-core machine: the probe waited 5-10 s before.
PROBE_GAP_S = 2.5


@pytest.fixture(autouse=True)
def _enough_descriptors() -> None:
    """The flood's connections, in this process."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 4 * FLOOD_CONNECTIONS:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4 * FLOOD_CONNECTIONS), hard))


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _get(url: str, authorization: str) -> tuple[int, bytes]:
    request = urllib.request.Request(f"{url}/subjects", headers={"Authorization": authorization})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as refused:
        return refused.code, refused.read()


async def _flood(host: str, port: int, authorization: str, stop: threading.Event) -> int:
    """Wrong passwords on FLOOD_CONNECTIONS keep-alive connections until `stop`; how many
    were answered (every answer must be 401)."""
    request = (
        f"GET /subjects HTTP/1.1\r\nHost: {host}\r\nAuthorization: {authorization}\r\n\r\n"
    ).encode()
    answered = 0

    async def one() -> None:
        nonlocal answered
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while not stop.is_set():
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 401"), head[:80]
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.lower().split(b"\r\n")
                    if line.startswith(b"content-length:")
                )
                await reader.readexactly(length)
                answered += 1
        finally:
            writer.close()

    await asyncio.gather(*(one() for _ in range(FLOOD_CONNECTIONS)))
    return answered


def _probe(bootstrap: str, stop: threading.Event, worst: list[float]) -> None:
    """A Metadata request of ~100 KB (decoded off the event loop), over and over."""
    with RawClient(bootstrap, "probe") as client:
        client.sock.settimeout(120)
        topics = [{"name": f"absent-{i:06d}", "topic_id": None} for i in range(6_000)]
        body = build(
            request_schema(METADATA, 12),
            topics=topics,
            allow_auto_topic_creation=False,
            include_topic_authorized_operations=False,
        )
        while not stop.is_set():
            started = time.monotonic()
            client.send_raw(client.frame(METADATA, 12, body))
            client.read_frame()
            worst.append(time.monotonic() - started)
            stop.wait(0.05)


def test_a_wrong_password_flood_leaves_the_broker_responsive(tmp_path: Path) -> None:
    settings = {"contextplane.registry.authentication.method": "BASIC"}
    with running_up(tmp_path, settings) as (bootstrap, url):
        made = contextplane(
            "user", "set", "alice", "--password-stdin", "--iterations", "16384",
            "--bootstrap-server", bootstrap, stdin="alice-secret\n",
        )  # fmt: skip
        assert made.status == 0, made.err
        wrong = _get(url, _basic("alice", "wrong"))
        assert wrong[0] == 401
        # An unknown user: the same status and body as a wrong password.
        assert _get(url, _basic("mallory", "wrong")) == wrong

        host, port = url.removeprefix("http://").rsplit(":", 1)
        stop, latencies = threading.Event(), []
        probe = threading.Thread(target=_probe, args=(bootstrap, stop, latencies), daemon=True)
        timer = threading.Timer(FLOOD_S, stop.set)
        timer.start()
        probe.start()
        try:
            answered = asyncio.run(_flood(host, int(port), _basic("alice", "wrong"), stop))
        finally:
            stop.set()
            timer.cancel()
            probe.join(120)
        assert answered > FLOOD_CONNECTIONS
        assert latencies and max(latencies) < PROBE_GAP_S, f"probe waited {max(latencies):.1f} s"
        assert _get(url, _basic("alice", "alice-secret"))[0] == 200
