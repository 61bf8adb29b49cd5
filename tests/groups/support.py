"""Helpers for the group integration tests: a broker and a raw Kafka wire client (kio
entities over a blocking socket)."""

from __future__ import annotations

import struct
import time
from collections.abc import Callable
from pathlib import Path

from tests.support.inprocess import InProcessBroker
from tests.support.rawclient import RawClient


class Broker(InProcessBroker):
    """A broker (in the test process) whose groups form without the initial delay."""

    def __init__(self, data_dir: Path, settings: dict[str, str] | None = None) -> None:
        super().__init__(
            data_dir, settings={"group.initial.rebalance.delay.ms": "0", **(settings or {})}
        )


class Wire(RawClient):
    """A blocking Kafka connection to a broker on 127.0.0.1."""

    def __init__(self, port: int, client_id: str = "wire-test") -> None:
        super().__init__(f"127.0.0.1:{port}", client_id)


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
