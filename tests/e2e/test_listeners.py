"""Several listeners: each is served, each connection knows the listener it came in on,
and Metadata, FindCoordinator and DescribeCluster answer with that listener's advertised
endpoint."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer

from contextplane.protocol.error_codes import ErrorCode
from tests.support.inprocess import InProcessBroker
from tests.support.rawclient import RawClient

API_VERSIONS, METADATA, FIND_COORDINATOR, DESCRIBE_CLUSTER = 18, 3, 10, 60

TWO_LISTENERS = {
    "group.initial.rebalance.delay.ms": "0",  # not under test here
    "listeners": "PLAINTEXT://127.0.0.1:0,INTERNAL://127.0.0.1:0,REPLICATION://127.0.0.1:0",
    "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,INTERNAL:PLAINTEXT,"
    "REPLICATION:PLAINTEXT",
    "advertised.listeners": "INTERNAL://internal.example:19093",
    "inter.broker.listener.name": "REPLICATION",
}


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[InProcessBroker]:
    running = InProcessBroker(tmp_path / "broker", settings=dict(TWO_LISTENERS)).start()
    yield running
    running.stop()


def _endpoints(port: int) -> list[tuple[str, int]]:
    """The broker endpoint of Metadata, FindCoordinator and DescribeCluster on one
    connection to `port`."""
    with RawClient(f"127.0.0.1:{port}") as raw:
        metadata = raw.request(METADATA, 12, topics=[], allow_auto_topic_creation=False)
        coordinator = raw.request(FIND_COORDINATOR, 4, key_type=0, coordinator_keys=["g"])
        cluster = raw.request(DESCRIBE_CLUSTER, 0, include_cluster_authorized_operations=False)
    (coordinator_entry,) = coordinator.coordinators
    assert coordinator_entry.error_code == ErrorCode.none
    (metadata_broker,) = metadata.brokers
    (cluster_broker,) = cluster.brokers
    return [
        (metadata_broker.host, metadata_broker.port),
        (coordinator_entry.host, coordinator_entry.port),
        (cluster_broker.host, cluster_broker.port),
    ]


def test_each_listener_answers_with_its_own_advertised_endpoint(broker: InProcessBroker) -> None:
    plaintext = broker.listener_port("PLAINTEXT")
    internal = broker.listener_port("INTERNAL")
    replication = broker.listener_port("REPLICATION")
    assert len({plaintext, internal, replication}) == 3
    assert _endpoints(plaintext) == [("127.0.0.1", plaintext)] * 3
    assert _endpoints(internal) == [("internal.example", 19093)] * 3
    assert _endpoints(replication) == [("127.0.0.1", replication)] * 3


def test_a_real_client_works_through_a_second_listener(broker: InProcessBroker) -> None:
    bootstrap = f"127.0.0.1:{broker.listener_port('REPLICATION')}"
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    producer.produce("through-second", value=b"hello")
    assert producer.flush(30) == 0
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "g2", "auto.offset.reset": "earliest"}
    )
    try:
        consumer.subscribe(["through-second"])
        message = None
        for _ in range(30):
            message = consumer.poll(1)
            if message is not None and message.error() is None:
                break
        assert message is not None and message.value() == b"hello"
    finally:
        consumer.close()


def test_a_sasl_listener_takes_nothing_but_the_handshake_before_authentication(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With SASL support present, a connection on a SASL listener starts in the handshake
    # state: ApiVersions is answered, anything else closes the connection (as in Kafka);
    # the PLAINTEXT listener of the same broker is unaffected.
    settings = {
        "listeners": "PLAINTEXT://127.0.0.1:0,CLIENTS://127.0.0.1:0",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CLIENTS:SASL_PLAINTEXT",
        "sasl.enabled.mechanisms": "SCRAM-SHA-512",
    }
    running = InProcessBroker(tmp_path / "broker", settings=settings).start()
    try:
        with RawClient(f"127.0.0.1:{running.listener_port('CLIENTS')}") as raw:
            versions = raw.request(
                API_VERSIONS, 3, client_software_name="t", client_software_version="1"
            )
            assert versions.error_code == ErrorCode.none
            raw.send(METADATA, 12, topics=[], allow_auto_topic_creation=False)
            assert raw.closed_by_broker()
        with RawClient(running.bootstrap) as raw:
            metadata = raw.request(METADATA, 12, topics=[], allow_auto_topic_creation=False)
            assert metadata.brokers[0].port == running.port
    finally:
        running.stop()
