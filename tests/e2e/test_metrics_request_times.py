"""Kafka's request time components on `GET /metrics` (RequestMetrics' siblings of
TotalTimeMs), from a broker process and confluent-kafka: a long-poll Fetch's wait is its
remote time, a request without a delayed part has none, each request's total covers its
remote time, and the request size covers the record produced."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import confluent_kafka as ck
import pytest

from tests.e2e.test_metrics_endpoint import _metrics_url, _scrape, _value
from tests.support.broker import BrokerProcess

FETCH_WAIT_MS = 400
LARGE = 20_000
COMPONENTS = (
    "requestqueuetimems",
    "localtimems",
    "responsequeuetimems",
    "remotetimems",
    "responsesendtimems",
    "totaltimems",
    "requestbytes",
)
QUANTILES = ("0.5", "0.75", "0.95", "0.98", "0.99", "0.999")


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[BrokerProcess]:
    process = BrokerProcess(tmp_path / "broker", settings={"http.port": "0"}).start()
    try:
        yield process
    finally:
        process.stop()


def test_request_time_components_follow_each_requests_parts(broker: BrokerProcess) -> None:
    url = _metrics_url(broker)
    producer = ck.Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"})
    producer.produce("timed", value=b"r" * LARGE)
    assert producer.flush(30) == 0
    # A consumer at the end of an idle partition: every Fetch waits fetch.wait.max.ms.
    consumer = ck.Consumer(
        {
            "bootstrap.servers": broker.bootstrap,
            "group.id": "timed-readers",
            "auto.offset.reset": "latest",
            "fetch.wait.max.ms": FETCH_WAIT_MS,
        }
    )
    consumer.assign([ck.TopicPartition("timed", 0, ck.OFFSET_END)])
    fetched = ("kafka_network_requestmetrics_requests_total", (("request", "Fetch"),))
    deadline = time.monotonic() + 60
    samples: dict = {}  # type: ignore[type-arg]
    while samples.get(fetched, 0) < 8 and time.monotonic() < deadline:
        assert consumer.poll(0.5) is None  # nothing is produced meanwhile
        _, samples = _scrape(url)
    consumer.close()
    assert samples.get(fetched, 0) >= 8, "the consumer's long polls were answered"

    def quantiles(name: str, request: str) -> list[float]:
        return [
            _value(samples, f"kafka_network_requestmetrics_{name}", request=request, quantile=q)
            for q in QUANTILES
        ]

    for request in ("Produce", "Fetch", "Metadata", "ApiVersions"):
        for name in COMPONENTS:
            values = quantiles(name, request)
            assert values == sorted(values) and values[0] >= 0, (request, name, values)
        # Each request's total is the sum of its parts: quantiles keep the order.
        totals = quantiles("totaltimems", request)
        for name in COMPONENTS[:-2]:
            assert all(t >= v for t, v in zip(totals, quantiles(name, request), strict=True))
    # No delayed part, no remote time; a long poll's wait is all remote time (most of the
    # fetches waited the whole fetch.wait.max.ms on an idle partition).
    assert quantiles("remotetimems", "Metadata") == [0.0] * len(QUANTILES)
    assert quantiles("remotetimems", "ApiVersions") == [0.0] * len(QUANTILES)
    assert quantiles("remotetimems", "Fetch")[0] >= FETCH_WAIT_MS * 0.9
    assert quantiles("remotetimems", "Produce")[-1] > 0  # acks=all: the WAL's sync
    assert quantiles("requestbytes", "Produce")[-1] > LARGE
    assert quantiles("requestbytes", "ApiVersions")[-1] < 200
