"""Kafka's RequestMetrics ErrorsPerSec and ThrottleTimeMs on `GET /metrics`, from a broker
process and a raw client that reads every response: each response's error codes are
counted by request type and error as Kafka's errorCounts() counts them (NONE included,
Fetch's top-level code and each partition's), and the throttle time each Produce and
Fetch response reported under a client quota is what the throttle histogram holds."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from conformance import wire
from tests.e2e.test_metrics_endpoint import _metrics_url, _scrape, _value
from tests.e2e.test_quotas import SHORT_WINDOWS, set_quota
from tests.support.broker import BrokerProcess
from tests.support.rawclient import RawClient

QUANTILES = ("0.5", "0.75", "0.95", "0.98", "0.99", "0.999")
TOPIC = "metered"
RATE = 10_000  # bytes a second, for both quotas
RECORD = b"m" * 10_000


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[BrokerProcess]:
    settings = {"http.port": "0", **SHORT_WINDOWS}
    process = BrokerProcess(tmp_path / "broker", settings=settings).start()
    try:
        yield process
    finally:
        process.stop()


def _ms(response: object) -> int:
    return round(response.throttle_time.total_seconds() * 1000)  # type: ignore[attr-defined]


def test_error_codes_and_throttle_times_are_counted_per_request(broker: BrokerProcess) -> None:
    url = _metrics_url(broker)
    bootstrap = broker.bootstrap
    _, before = _scrape(url)
    with RawClient(bootstrap, client_id="observer") as observer:
        wire.create_topic(observer, TOPIC)
        assert wire.wait_for_topic(observer, TOPIC, 1)
        set_quota(bootstrap, [("client-id", "slow")], "producer_byte_rate", RATE)
        set_quota(bootstrap, [("client-id", "slow")], "consumer_byte_rate", RATE)
        # Two requests that fail: an unknown topic, a partition the topic does not have.
        assert wire.produce(observer, "no-such-topic", wire.encode_batch([b"x"])).error_code == 3
        missing = wire.produce(observer, TOPIC, wire.encode_batch([b"x"]), partition=5)
        assert missing.error_code == 3
        produced: list[int] = []
        fetched: list[int] = []
        fetch_codes = 0
        with RawClient(bootstrap, client_id="slow") as slow:
            for _ in range(3):  # 10 kB each under a 10 kB/s quota: throttled
                batch = wire.encode_batch([RECORD])
                response = slow.request(wire.PRODUCE, 9, **wire.produce_fields(TOPIC, batch))
                assert response.responses[0].partition_responses[0].error_code == 0
                produced.append(_ms(response))
            for offset in (0, 1):
                response = wire.fetch(slow, [(TOPIC, 0, offset)])
                # Kafka answers a fetch over its quota without partitions (a throttled
                # response): only its top-level code to count then.
                partitions = [p for t in response.responses for p in t.partitions]
                assert int(response.error_code) == 0
                assert [int(p.error_code) for p in partitions] in ([], [0])
                fetch_codes += 1 + len(partitions)
                fetched.append(_ms(response))
        beyond = wire.fetch_one(observer, TOPIC, 1_000)
        assert beyond.error_code == 1  # OFFSET_OUT_OF_RANGE
    assert max(produced) > 0 and max(fetched) > 0, (produced, fetched)
    _, samples = _scrape(url)

    def counted(request: str, error: str) -> float:
        name = "kafka_network_requestmetrics_errors_total"
        key = (name, (("error", error), ("request", request)))
        return samples.get(key, 0) - before.get(key, 0)

    assert counted("Produce", "UNKNOWN_TOPIC_OR_PARTITION") == 2
    assert counted("Produce", "NONE") == 3
    # Each Fetch response: its top-level code and its partitions'.
    assert counted("Fetch", "NONE") == fetch_codes + 1
    assert counted("Fetch", "OFFSET_OUT_OF_RANGE") == 1
    assert counted("AlterClientQuotas", "NONE") == 2  # one entry each
    assert counted("CreateTopics", "NONE") == 1
    # Metadata: each topic's code and each of its partitions' (the topic's, once listed).
    assert counted("Metadata", "NONE") >= 2
    # The throttle histogram holds the throttle times the responses reported: the
    # highest quantile is the largest (nearest rank over fewer than 1,000 requests),
    # and every quantile one of them (the observer's two produces were not throttled).
    for request, seen in (("Produce", [*produced, 0]), ("Fetch", [*fetched, 0])):
        values = [
            _value(
                samples, "kafka_network_requestmetrics_throttletimems", request=request, quantile=q
            )
            for q in QUANTILES
        ]
        assert values == sorted(values), (request, values)
        assert values[-1] == max(seen), (request, values, seen)
        assert set(values) <= set(seen), (request, values, seen)
    for request in ("Metadata", "CreateTopics"):
        value = _value(
            samples,
            "kafka_network_requestmetrics_throttletimems",
            request=request,
            quantile="0.999",
        )
        assert value == 0, request
