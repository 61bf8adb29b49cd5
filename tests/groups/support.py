"""Helpers for the group integration tests: a broker subprocess and a raw Kafka wire
client (kio entities over a blocking socket)."""

from __future__ import annotations

import io
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kio.index import load_request_schema, load_response_schema
from kio.serial import entity_reader, entity_writer

from contextplane.protocol.build import build


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Broker:
    """`contextplane up` in a subprocess, on a fixed port so that a restart keeps it."""

    def __init__(self, data_dir: Path, settings: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.settings = {"group.initial.rebalance.delay.ms": "0", **(settings or {})}
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir.parent / f"{data_dir.name}.log"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 30.0) -> Broker:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [
            sys.executable,
            "-m",
            "contextplane.cli.main",
            "up",
            "--data-dir",
            str(self.data_dir),
            "--port",
            str(self.port),
        ]
        for name, value in self.settings.items():
            args += ["--set", f"{name}={value}"]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy()
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"broker exited early:\n{self.log_tail()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"broker did not listen within {timeout_s}s:\n{self.log_tail()}")

    def stop(self, timeout_s: float = 30.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise RuntimeError(f"broker did not stop on SIGTERM:\n{self.log_tail()}") from None

    def log_tail(self, lines: int = 60) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


class Wire:
    """A blocking Kafka connection that sends kio request entities."""

    def __init__(self, port: int, client_id: str = "wire-test") -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.client_id = client_id.encode()
        self._correlation = 0
        self._pending: list[tuple[int, type]] = []

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Wire:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, api_key: int, version: int, **fields: Any) -> None:
        schema = load_request_schema(api_key, version)
        body = build(schema, fields)
        self._correlation += 1
        header = struct.pack(">hhih", api_key, version, self._correlation, len(self.client_id))
        header += self.client_id
        if schema.__flexible__:
            header += b"\x00"  # no tagged fields
        buffer = io.BytesIO()
        entity_writer(schema)(buffer, body)
        payload = header + buffer.getvalue()
        self.sock.sendall(struct.pack(">i", len(payload)) + payload)
        self._pending.append((self._correlation, load_response_schema(api_key, version)))

    def receive(self) -> Any:
        correlation, schema = self._pending.pop(0)
        (size,) = struct.unpack(">i", self._read(4))
        frame = self._read(size)
        (got,) = struct.unpack_from(">i", frame, 0)
        assert got == correlation, (got, correlation)
        position = 4
        if schema.__flexible__ and schema.__api_key__ != 18:
            assert frame[position] == 0  # no tagged fields in the header
            position += 1
        entity, _ = entity_reader(schema)(frame, position)
        return entity

    def call(self, api_key: int, version: int, **fields: Any) -> Any:
        self.send(api_key, version, **fields)
        return self.receive()

    def _read(self, count: int) -> bytes:
        chunks = []
        while count:
            chunk = self.sock.recv(count)
            if not chunk:
                raise ConnectionError("broker closed the connection")
            chunks.append(chunk)
            count -= len(chunk)
        return b"".join(chunks)


def wait_until(predicate: Callable[[], bool], timeout_s: float, step: Callable[[], None]) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        step()
        if predicate():
            return True
    return False


def subscription(*topics: str) -> bytes:
    """A ConsumerProtocolSubscription v0."""
    out = struct.pack(">hi", 0, len(topics))
    for topic in topics:
        raw = topic.encode()
        out += struct.pack(">h", len(raw)) + raw
    return out + struct.pack(">i", -1)
