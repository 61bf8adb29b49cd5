"""The producer helpers of these tests close their librdkafka handle.

Their callbacks are bound methods, so helper and producer form a reference cycle: dropping
the helper left the producer alive, reconnecting to a stopped broker and printing
"Connection refused" into the output of later test files."""

from __future__ import annotations

import socket

import pytest

from tests.hostile.test_disk_full import TrackedProducer
from tests.hostile.test_object_store_down import AckingProducer


def _closed_port() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{probe.getsockname()[1]}"


@pytest.mark.parametrize(
    "make", [lambda b: TrackedProducer(b), lambda b: AckingProducer(b, "topic")]
)
def test_a_producer_helper_closes_its_client(make: object) -> None:
    helper = make(_closed_port())  # type: ignore[operator]
    helper.close()
    with pytest.raises(RuntimeError, match="closed"):
        helper.producer.poll(0)
