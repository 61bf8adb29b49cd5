"""A tiny counting HTTP proxy in front of SeaweedFS's S3 endpoint (the bench and tests).

contextplane's object-store counters live in-process and are not exported, so the bench
and the tests count object requests at the store side: every HTTP request the broker
sends to S3 goes through this proxy, which counts it by kind (PUT object; PUT_PART and
the two POSTs of a multipart upload; ranged/whole GET; LIST, HEAD, DELETE) and forwards
it unchanged.
Responses are piped back as bytes.

Run as a subprocess (so it never competes with the benchmark client for the GIL),
`S3CountingProxy` below, or by hand:

    python -m tests.support.s3proxy --upstream 127.0.0.1:8333 --port 0

It prints `PORT <n>` once listening. `GET /__bench_counts__` answers the counts as JSON
(that request is not forwarded and not counted).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import json
import signal
import subprocess
import sys
import urllib.request
from collections import Counter
from pathlib import Path

COUNTS_PATH = b"/__bench_counts__"
counts: Counter[str] = Counter()


def _kind(method: str, target: str, headers: dict[str, str]) -> str:
    query = target.partition("?")[2]
    if method == "GET":
        if "list-type" in query or "prefix=" in query:
            return "LIST"
        return "GET_RANGE" if "range" in headers else "GET"
    if method == "PUT" and "partNumber=" in query:
        return "PUT_PART"  # one part of a multipart upload
    if method == "POST" and "uploadId=" in query:
        return "POST_COMPLETE_MULTIPART"
    if method == "POST" and "uploads" in query:
        return "POST_CREATE_MULTIPART"
    return method


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            data = await reader.read(1 << 20)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


async def _forward_body(
    reader: asyncio.StreamReader, upstream: asyncio.StreamWriter, headers: dict[str, str]
) -> int:
    if headers.get("transfer-encoding", "").lower() == "chunked":
        total = 0
        while True:
            line = await reader.readline()
            upstream.write(line)
            size = int(line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while True:  # trailers, then the empty line
                    trailer = await reader.readline()
                    upstream.write(trailer)
                    if trailer in (b"\r\n", b"\n", b""):
                        return total
            upstream.write(await reader.readexactly(size + 2))
            total += size
            await upstream.drain()
    remaining = int(headers.get("content-length", "0") or 0)
    total = remaining
    while remaining:
        data = await reader.read(min(remaining, 1 << 20))
        if not data:
            raise ConnectionError("client closed mid-body")
        upstream.write(data)
        remaining -= len(data)
        await upstream.drain()
    return total


async def _handle(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, upstream_addr: tuple[str, int]
) -> None:
    up_reader: asyncio.StreamReader | None = None
    up_writer: asyncio.StreamWriter | None = None
    pipe: asyncio.Task[None] | None = None
    try:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = (lines[0].split(" ", 2) + ["", ""])[:3]
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
            if target.encode().startswith(COUNTS_PATH):
                body = json.dumps(dict(counts)).encode()
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    + f"Content-Length: {len(body)}\r\n\r\n".encode()
                    + body
                )
                await writer.drain()
                continue
            if up_writer is None:
                up_reader, up_writer = await asyncio.open_connection(*upstream_addr)
                pipe = asyncio.create_task(_pipe(up_reader, writer))
            kind = _kind(method, target, headers)
            counts[kind] += 1
            up_writer.write(head)
            sent = await _forward_body(reader, up_writer, headers)
            counts[kind + "_bytes"] += sent
            await up_writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        if up_writer is not None:
            with contextlib.suppress(Exception):
                up_writer.close()
        if pipe is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(pipe, 5)
        with contextlib.suppress(Exception):
            writer.close()


async def _main(upstream: str, port: int) -> None:
    host, _, up_port = upstream.rpartition(":")
    addr = (host, int(up_port))
    server = await asyncio.start_server(
        lambda r, w: _handle(r, w, addr), "127.0.0.1", port, limit=1 << 20
    )
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


def _die_with_parent() -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class S3CountingProxy:
    """This proxy as a subprocess in front of a SeaweedFS S3 endpoint."""

    def __init__(self, upstream_endpoint: str, log_path: Path) -> None:
        upstream = upstream_endpoint.removeprefix("http://")
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.support.s3proxy", "--upstream", upstream],
            stdout=subprocess.PIPE,
            stderr=self._log,
            stdin=subprocess.DEVNULL,
            cwd=Path(__file__).resolve().parents[2],
            preexec_fn=_die_with_parent,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline().decode()
        if not line.startswith("PORT "):
            raise RuntimeError(f"s3 proxy did not start: {line!r}")
        self.port = int(line.split()[1])

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def counts(self) -> dict[str, int]:
        with urllib.request.urlopen(f"{self.endpoint}{COUNTS_PATH.decode()}", timeout=10) as resp:
            return {k: int(v) for k, v in json.loads(resp.read()).items()}

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.s3proxy")
    parser.add_argument("--upstream", required=True, help="host:port of the S3 endpoint")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_main(args.upstream, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
