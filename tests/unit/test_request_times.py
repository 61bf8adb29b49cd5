"""Kafka's request time components from the points a connection times (broker/stats.py,
console/metrics.py): each histogram is the difference of its two points, the quantiles
are over the latest REQUEST_TIMES_KEPT requests, and the ring keeps them in order."""

from __future__ import annotations

import pytest

from contextplane.broker.stats import REQUEST_FIELDS, REQUEST_TIMES_KEPT, BrokerStats, TopicCounters
from contextplane.console.metrics import REQUEST_COMPONENTS, Snapshot, families

MS = 1_000_000


def scrape(stats: BrokerStats) -> dict[tuple[str, str, str], float]:
    snapshot = Snapshot(
        brokers=1,
        partitions=[],
        all_topics=TopicCounters(),
        topics={},
        requests={str(key): times.copy() for key, times in stats.requests.items()},
    )
    return {
        (sample.name, sample.labels.get("request", ""), sample.labels.get("quantile", "")): (
            sample.value
        )
        for family in families(snapshot)
        if family.name.startswith("kafka_network_requestmetrics")
        for sample in family.samples
    }


def test_each_component_is_the_time_between_its_two_points() -> None:
    stats = BrokerStats()
    # received 0, handler 1 ms later, 2 ms in it, its turn 3 ms later, 4 ms for its
    # delayed part, 5 ms writing: 15 ms in all; a quota throttled it for 7 ms.
    stats.request_done(0, 300, 0, 1 * MS, 3 * MS, 6 * MS, 10 * MS, 15 * MS, 7)
    samples = scrape(stats)
    expected = {
        "requestqueuetimems": 1,
        "localtimems": 2,
        "responsequeuetimems": 3,
        "remotetimems": 4,
        "responsesendtimems": 5,
        "totaltimems": 15,
        "requestbytes": 300,
        "throttletimems": 7,
    }
    assert {name for name, _, _ in REQUEST_COMPONENTS} == set(expected)
    for name, value in expected.items():
        for quantile in ("0.5", "0.99", "0.999"):
            key = (f"kafka_network_requestmetrics_{name}", "0", quantile)
            assert samples[key] == pytest.approx(value), key
    assert samples[("kafka_network_requestmetrics_requests_total", "0", "")] == 1


def test_quantiles_are_over_the_latest_requests_the_ring_holds() -> None:
    stats = BrokerStats()
    # Old slow requests, then a ring's worth of fast ones: the slow ones are forgotten.
    for _ in range(10):
        stats.request_done(1, 10, 0, 0, 900 * MS, 900 * MS, 900 * MS, 900 * MS)
    for n in range(REQUEST_TIMES_KEPT):
        stats.request_done(1, n, 0, 0, n * MS, n * MS, n * MS, n * MS)
    times = stats.requests[1]
    assert times.count == REQUEST_TIMES_KEPT + 10
    rows = times.rows()
    assert len(rows) == REQUEST_TIMES_KEPT
    assert all(len(row) == REQUEST_FIELDS for row in rows)
    assert [row[0] for row in rows] == list(range(REQUEST_TIMES_KEPT))  # oldest first
    samples = scrape(stats)
    assert samples[("kafka_network_requestmetrics_localtimems", "1", "0.999")] == pytest.approx(
        REQUEST_TIMES_KEPT - 2
    )
    assert samples[("kafka_network_requestmetrics_localtimems", "1", "0.5")] == pytest.approx(511)
    assert samples[("kafka_network_requestmetrics_requestqueuetimems", "1", "0.999")] == 0
    assert times.since(times.count - 2) == pytest.approx(
        [REQUEST_TIMES_KEPT - 2, REQUEST_TIMES_KEPT - 1]
    )
