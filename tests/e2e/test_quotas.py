"""Client quotas through real clients: Kafka's own kafka-configs (ConfigCommand) sets and
describes them, they survive a restart and are audited; a confluent-kafka producer over
producer_byte_rate is throttled to about its quota and told so (throttle_time_ms in its
statistics) while another client id is not; and a client that ignores throttle_time_ms
is still slowed, because the broker mutes its connection after the throttled response
(KIP-219)."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from conformance import wire
from tests.support.inprocess import InProcessBroker
from tests.support.rawclient import RawClient

MB = 1_000_000
PRODUCE = 0
FETCH = 1
DESCRIBE_CLIENT_QUOTAS = 48
ALTER_CLIENT_QUOTAS = 49
# Rates over two one-second windows: a client's first burst is at most about one
# window of its quota (with Kafka's default of 11 windows it would be ten).
SHORT_WINDOWS = {"quota.window.num": "2", "quota.window.size.seconds": "1"}


@pytest.fixture
def quota_broker(tmp_path: Path) -> Iterator[InProcessBroker]:
    running = InProcessBroker(tmp_path / "broker", settings=dict(SHORT_WINDOWS)).start()
    yield running
    running.stop()


def set_quota(bootstrap: str, entity: list[tuple[str, str | None]], key: str, value: float) -> None:
    with RawClient(bootstrap, client_id="quota-admin") as client:
        response = client.request(
            ALTER_CLIENT_QUOTAS,
            1,
            entries=[
                {
                    "entity": [{"entity_type": t, "entity_name": n} for t, n in entity],
                    "ops": [{"key": key, "value": value, "remove": False}],
                }
            ],
            validate_only=False,
        )
    assert [int(e.error_code) for e in response.entries] == [0]


def test_kafka_configs_sets_describes_and_removes_quotas_that_survive_restart(
    broker: InProcessBroker,
) -> None:
    from conformance.suites.librdkafka.suite import fetch_kafka_tools

    java = shutil.which("java")
    assert java is not None, "java is installed by harness/install.sh"
    libs = fetch_kafka_tools()

    def kafka_configs(*args: str) -> str:
        result = subprocess.run(
            [java, "-cp", f"{libs}/*", "org.apache.kafka.tools.ConfigCommand"]
            + ["--bootstrap-server", broker.bootstrap, *args],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr[-2000:]
        return result.stdout

    kafka_configs(
        "--alter", "--add-config", "producer_byte_rate=1048576,consumer_byte_rate=2097152",
        "--entity-type", "clients", "--entity-name", "c1",
    )  # fmt: skip
    kafka_configs(
        "--alter", "--add-config", "request_percentage=50",
        "--entity-type", "users", "--entity-name", "alice",
        "--entity-type", "clients", "--entity-default",
    )  # fmt: skip
    audit = broker.log_tail(200)
    assert 'audit AlterClientQuotas client-quota="client-id=c1" result=NONE' in audit, audit
    broker.restart()
    described = kafka_configs("--describe", "--entity-type", "clients", "--entity-name", "c1")
    assert "producer_byte_rate=1048576" in described, described
    assert "consumer_byte_rate=2097152" in described, described
    kafka_configs(
        "--alter", "--delete-config", "producer_byte_rate",
        "--entity-type", "clients", "--entity-name", "c1",
    )  # fmt: skip
    with RawClient(broker.bootstrap) as client:
        response = client.request(DESCRIBE_CLIENT_QUOTAS, 1, components=[], strict=False)
    assert {
        (frozenset((e.entity_type, e.entity_name) for e in entry.entity), v.key, v.value)
        for entry in response.entries
        for v in entry.values
    } == {
        (frozenset({("client-id", "c1")}), "consumer_byte_rate", 2097152.0),
        (frozenset({("user", "alice"), ("client-id", None)}), "request_percentage", 50.0),
    }


class _MeteredProducer:
    """A confluent-kafka producer that counts delivered bytes and the broker throttle
    librdkafka reports in its statistics."""

    def __init__(self, bootstrap: str, client_id: str) -> None:
        self.delivered = 0
        self.throttle_max_ms = 0
        self.producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "client.id": client_id,
                "linger.ms": 5,
                # A small queue: what is still queued at the end is purged, not sent.
                "queue.buffering.max.kbytes": 1024,
                "statistics.interval.ms": 200,
                "stats_cb": self._stats,
            }
        )

    def _stats(self, text: str) -> None:
        stats = json.loads(text)
        for broker in stats.get("brokers", {}).values():
            self.throttle_max_ms = max(self.throttle_max_ms, int(broker["throttle"]["max"]))

    def _delivered(self, error: Any, message: Any) -> None:
        if error is None:
            self.delivered += len(message.value())

    def run(self, topic: str, seconds: float) -> float:
        """Produce as fast as the client may for `seconds`; bytes per second delivered."""
        payload = b"x" * 10_000
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            try:
                self.producer.produce(topic, payload, on_delivery=self._delivered)
            except BufferError:
                self.producer.poll(0.05)
            self.producer.poll(0)
        elapsed = time.monotonic() - started
        rate = self.delivered / elapsed
        self.producer.poll(0.5)  # a last statistics report
        self.producer.purge()
        self.producer.flush(10)
        return rate


def test_a_producer_over_its_quota_is_throttled_to_about_it_and_told(
    quota_broker: InProcessBroker,
) -> None:
    set_quota(quota_broker.bootstrap, [("client-id", "slow")], "producer_byte_rate", 1 * MB)
    slow = _MeteredProducer(quota_broker.bootstrap, "slow")
    rate = slow.run("quota-topic", 5.0)
    # Liveness-style bound: a generous multiple of the quota, not a performance claim.
    assert rate <= 3 * MB, f"{rate / MB:.2f} MB/s delivered under a 1 MB/s quota"
    assert slow.throttle_max_ms > 0, "throttle_time_ms never reached the client"
    free = _MeteredProducer(quota_broker.bootstrap, "free")
    free_rate = free.run("quota-topic", 3.0)
    assert free.throttle_max_ms == 0
    assert free_rate > rate, (free_rate, rate)


def test_a_consumer_over_its_quota_is_throttled_to_about_it_and_told(
    quota_broker: InProcessBroker,
) -> None:
    bootstrap = quota_broker.bootstrap
    loader = Producer(
        {"bootstrap.servers": bootstrap, "client.id": "loader", "batch.size": 100_000}
    )
    for _ in range(400):
        loader.produce("read-topic", b"r" * 10_000)  # 4 MB
    assert loader.flush(30) == 0
    # 4 MB to read at 200 kB/s: unthrottled, it would all come in well under a second.
    set_quota(bootstrap, [("client-id", "reader")], "consumer_byte_rate", 200_000)
    throttle_max_ms = 0

    def stats(text: str) -> None:
        nonlocal throttle_max_ms
        for broker in json.loads(text).get("brokers", {}).values():
            throttle_max_ms = max(throttle_max_ms, int(broker["throttle"]["max"]))

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "client.id": "reader",
            "group.id": "readers",
            "enable.auto.commit": False,
            "statistics.interval.ms": 200,
            "stats_cb": stats,
        }
    )
    consumer.assign([TopicPartition("read-topic", 0, 0)])
    received = 0
    started = time.monotonic()
    try:
        while time.monotonic() - started < 4.0:
            message = consumer.poll(0.2)
            if message is not None and message.error() is None:
                received += len(message.value())
        elapsed = time.monotonic() - started
        consumer.poll(0.5)  # a last statistics report
    finally:
        consumer.close()
    rate = received / elapsed
    # Liveness-style bound: a generous multiple of the quota, not a performance claim.
    assert 0 < rate <= 3 * 200_000, f"{rate:.0f} B/s read under a 200 kB/s quota"
    assert throttle_max_ms > 0, "throttle_time_ms never reached the consumer"


def test_a_client_ignoring_throttle_time_is_muted(quota_broker: InProcessBroker) -> None:
    bootstrap = quota_broker.bootstrap
    set_quota(bootstrap, [("client-id", "rude")], "producer_byte_rate", 100_000)
    with RawClient(bootstrap, client_id="rude") as client:
        wire.create_topic(client, "rude-topic")
        assert wire.wait_for_topic(client, "rude-topic", 1)
        batch = wire.encode_batch([b"x" * 100_000, b"y" * 100_000, b"z" * 100_000])
        produced = client.request(
            PRODUCE,
            9,
            transactional_id=None,
            acks=-1,
            timeout=10000,
            topic_data=[{"name": "rude-topic", "partition_data": [{"index": 0, "records": batch}]}],
        )
        assert produced.responses[0].partition_responses[0].error_code == 0
        throttle_s = produced.throttle_time.total_seconds()
        # 300 KB against 100 KB/s measured over at least one second: throttled 2 s.
        assert throttle_s > 0.5, produced.throttle_time
        answered = time.monotonic()
        # The client ignores throttle_time_ms and asks again at once: the broker reads
        # nothing from it until the throttle has passed.
        wire.api_versions(client)
        waited = time.monotonic() - answered
    assert waited >= throttle_s / 2, f"answered after {waited:.3f} s of a {throttle_s} s mute"


def test_pipelined_produce_requests_wait_for_the_throttle(quota_broker: InProcessBroker) -> None:
    """Produce requests written back to back by a client over its quota, behind a long
    poll that holds their responses back: once the first is throttled, the others
    already read wait for the throttle to pass before they are handled (Kafka handles
    one request of a connection at a time and mutes it), so by the time the first
    produce is answered the log holds one request's records, not five."""
    bootstrap = quota_broker.bootstrap
    set_quota(bootstrap, [("client-id", "eager")], "producer_byte_rate", 10_000)
    requests, records_each = 5, 4
    with RawClient(bootstrap, client_id="observer") as observer:
        for topic in ("eager-topic", "quiet-topic"):
            wire.create_topic(observer, topic)
            assert wire.wait_for_topic(observer, topic, 1)
        with RawClient(bootstrap, client_id="eager") as client:
            batch = wire.encode_batch([b"p" * 10_000] * records_each)
            # One write: a fetch of an empty topic waiting up to 300 ms, then the produce
            # requests. Responses go in order, so the produce responses (and the mute
            # that follows the first) wait behind the fetch, as a pipelining client's
            # wait behind a slow one.
            frames: list[bytes] = []
            client.send_raw = frames.append  # type: ignore[method-assign]
            client.send(FETCH, 12, **_long_poll("quiet-topic", max_wait_ms=300))
            for _ in range(requests):
                client.send(
                    PRODUCE,
                    9,
                    transactional_id=None,
                    acks=-1,
                    timeout=10000,
                    topic_data=[
                        {"name": "eager-topic", "partition_data": [{"index": 0, "records": batch}]}
                    ],
                )
            client.sock.sendall(b"".join(frames))
            client.receive()  # the fetch, after its wait
            first = client.receive()
            assert first.responses[0].partition_responses[0].error_code == 0
            assert first.throttle_time.total_seconds() > 1, first.throttle_time
            # The end of the log while the first throttle runs: what was accepted.
            accepted = wire.list_offsets(observer, "eager-topic", -1).offset
            assert accepted == records_each, (
                f"{accepted} records of {requests * records_each} accepted within the first "
                f"throttle of {first.throttle_time} under a 10 kB/s quota"
            )
            # The next is handled once the throttle has passed, and answered in order
            # (`receive` checks the correlation id).
            second = client.receive()
            assert second.responses[0].partition_responses[0].error_code == 0
            assert second.responses[0].partition_responses[0].base_offset == records_each


def _long_poll(topic: str, max_wait_ms: int) -> dict[str, Any]:
    """Fetch v12 fields: partition 0 of `topic` from offset 0, waiting for 1 MB."""
    partition = {
        "partition": 0,
        "current_leader_epoch": -1,
        "fetch_offset": 0,
        "last_fetched_epoch": -1,
        "log_start_offset": -1,
        "partition_max_bytes": 1 << 20,
    }
    return {
        "cluster_id": None,
        "replica_id": -1,
        "replica_state": {"replica_id": -1, "replica_epoch": -1},
        "max_wait": max_wait_ms,
        "min_bytes": 1 << 20,
        "max_bytes": 1 << 20,
        "isolation_level": 0,
        "session_id": 0,
        "session_epoch": -1,
        "topics": [{"topic": topic, "partitions": [partition]}],
        "forgotten_topics_data": [],
        "rack_id": "",
    }
