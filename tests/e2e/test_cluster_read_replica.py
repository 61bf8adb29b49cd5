"""Fetch from an in-zone broker (KIP-392, RFC 0004 §7 slice 7): two broker processes on
one PostgreSQL and one object store, broker 1 in rack a and broker 2 in rack b, both with
`replica.selector.class=org.apache.kafka.common.replica.RackAwareReplicaSelector`.

- a confluent-kafka consumer with `client.rack=b` of a partition broker 1 leads is sent to
  broker 2 (PreferredReadReplica) and reads every record exactly once and in order from
  it, also records produced while it waits at the end: broker 2's /metrics count the
  record bytes it sent to zone b, broker 1's count none;
- the Java client with `client.rack=b` the same;
- a consumer without a rack reads from the leader: broker 2 sends it no record bytes;
- read_committed consumers with `client.rack=b` (confluent-kafka and the Java client) of
  committed and aborted transactions, and of an open one with committed records after
  it, read from broker 2 exactly the committed records, in order: none of the aborted
  transactions, and the records after the open transaction only once it aborted;
- broker 2 killed -9 while the rack-b consumer reads from it: the consumer goes back to
  the leader and reads the rest, every record once and in order.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition

from harness import java_client
from tests.e2e.test_cluster_failover import (
    broker,
    create,
    fixture,
    metadata_replicas,
    uploaded_end,
)
from tests.e2e.test_metrics_endpoint import _metrics_url, _scrape
from tests.support.broker import BrokerProcess
from tests.support.postgres import PostgresServer
from tests.support.wait import wait_until

RACK_AWARE = "org.apache.kafka.common.replica.RackAwareReplicaSelector"
TOPIC = "zoned"


def zoned_broker(path: Path, node: int, rack: str, url: str, objects: str) -> BrokerProcess:
    return broker(
        path,
        node,
        url,
        objects,
        **{
            "broker.rack": rack,
            "replica.selector.class": RACK_AWARE,
            "upload.interval.ms": "200",
            "http.port": "0",
        },
    )


def zone_bytes_out(metrics_url: str, zone: str) -> float:
    """Record bytes the broker sent in Fetch responses to clients of `zone`."""
    _, samples = _scrape(metrics_url)
    return sum(
        value
        for (name, labels), value in samples.items()
        if name == "contextplane_zone_record_bytes_total"
        and dict(labels).get("direction") == "out"
        and dict(labels).get("client_zone") == zone
    )


def produce(bootstrap: str, partition: int, values: list[bytes]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    for value in values:
        producer.produce(TOPIC, value=value, partition=partition)
    assert producer.flush(60) == 0


def consumer(bootstrap: str, **config: str) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "zoned-readers",
            "enable.auto.commit": False,
            "isolation.level": "read_uncommitted",
            "fetch.wait.max.ms": 100,
            "topic.metadata.refresh.interval.ms": 1000,
            **config,
        }
    )


def read(reader: Consumer, count: int, timeout_s: float = 60) -> list[tuple[int, bytes]]:
    """The next `count` records (offset, value) the consumer returns."""
    got: list[tuple[int, bytes]] = []
    deadline = time.monotonic() + timeout_s
    while len(got) < count and time.monotonic() < deadline:
        message = reader.poll(0.5)
        if message is None or message.error():
            continue
        got.append((message.offset(), message.value()))
    return got


def values(first: int, count: int) -> list[bytes]:
    return [f"v{i}".encode() * 20 for i in range(first, first + count)]


def led_by_one(url: str, bootstrap: str) -> int:
    leaders = create(bootstrap, TOPIC, 4, url)
    return min(p for p, leader in leaders.items() if leader == 1)


@dataclass
class Zoned:
    """Broker 1 in rack a, broker 2 in rack b, the partition broker 1 leads, and where
    each broker's /metrics are."""

    url: str
    one: BrokerProcess
    two: BrokerProcess
    partition: int
    metrics_one: str
    metrics_two: str


@contextmanager
def zoned(tmp_path: Path, postgres_server: PostgresServer) -> Iterator[Zoned]:
    url, objects = fixture(tmp_path, postgres_server)
    one = zoned_broker(tmp_path / "one", 1, "a", url, objects).start()
    two = zoned_broker(tmp_path / "two", 2, "b", url, objects).start()
    try:
        partition = led_by_one(url, one.bootstrap)
        yield Zoned(url, one, two, partition, _metrics_url(one), _metrics_url(two))
    finally:
        two.stop()
        one.stop()


def test_a_consumer_of_rack_b_reads_a_rack_a_partition_from_the_rack_b_broker(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    with zoned(tmp_path, postgres_server) as z:
        one, partition, metrics_one, metrics_two = z.one, z.partition, z.metrics_one, z.metrics_two
        # Metadata lists the rack-b broker as a replica: the Java client needs it.
        assert metadata_replicas(one.bootstrap, TOPIC)[partition] == ([1, 2], [])
        produce(one.bootstrap, partition, values(0, 300))
        reader = consumer(one.bootstrap, **{"client.rack": "b"})
        reader.assign([TopicPartition(TOPIC, partition, 0)])
        try:
            got = read(reader, 300)
            # Produced while the consumer waits at the end: seen once uploaded.
            produce(one.bootstrap, partition, values(300, 200))
            got += read(reader, 200)
        finally:
            reader.close()
        assert got == list(enumerate(values(0, 500)))
        sent_two = zone_bytes_out(metrics_two, "b")
        assert sent_two >= sum(len(v) for v in values(0, 500))
        assert zone_bytes_out(metrics_one, "b") == 0  # not a record byte crossed zones
        # The Java client the same way: every record once, in order, from broker 2.
        java = java_client.run(
            ["consume", "--bootstrap", one.bootstrap, "--topic", TOPIC, "--count", "500",
             "--timeout-ms", "60000", "--config", "client.rack=b"],
            timeout=120,
            check=True,
        )  # fmt: skip
        assert [(r[1], r[3]) for r in java.records] == [
            (offset, value.decode()) for offset, value in enumerate(values(0, 500))
        ]
        assert zone_bytes_out(metrics_two, "b") >= 2 * sent_two
        assert zone_bytes_out(metrics_one, "b") == 0
        sent_two = zone_bytes_out(metrics_two, "b")
        # Without a rack the leader serves (the replica sends nothing).
        plain = consumer(one.bootstrap)
        plain.assign([TopicPartition(TOPIC, partition, 0)])
        try:
            assert read(plain, 500) == list(enumerate(values(0, 500)))
        finally:
            plain.close()
        assert zone_bytes_out(metrics_two, "b") == sent_two
        assert zone_bytes_out(metrics_two, "unknown") == 0
        assert zone_bytes_out(metrics_one, "unknown") > 0


def transactional(bootstrap: str, tid: str) -> Producer:
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": tid, "linger.ms": 5})
    producer.init_transactions(60)
    return producer


def transaction(producer: Producer, partition: int, batch: list[bytes], commit: bool) -> None:
    producer.begin_transaction()
    for value in batch:
        producer.produce(TOPIC, value=value, partition=partition)
    if commit:
        producer.commit_transaction(60)
    else:
        assert producer.flush(60) == 0  # the records are written, then aborted
        producer.abort_transaction(60)


def high_watermark(bootstrap: str, partition: int) -> int:
    probe = consumer(bootstrap)
    try:
        return int(probe.get_watermark_offsets(TopicPartition(TOPIC, partition), 30)[1])
    finally:
        probe.close()


def test_a_read_committed_consumer_of_rack_b_reads_the_committed_records_from_the_rack_b_broker(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    with zoned(tmp_path, postgres_server) as z:
        one, partition, metrics_one, metrics_two = z.one, z.partition, z.metrics_one, z.metrics_two
        writer = transactional(one.bootstrap, "zoned-writer")
        transaction(writer, partition, values(0, 100), commit=True)
        transaction(writer, partition, values(100, 50), commit=False)
        transaction(writer, partition, values(150, 100), commit=True)
        # Another producer's transaction left open, and committed records after it.
        holder = transactional(one.bootstrap, "zoned-holder")
        holder.begin_transaction()
        for value in values(1000, 30):
            holder.produce(TOPIC, value=value, partition=partition)
        assert holder.flush(60) == 0
        transaction(writer, partition, values(250, 50), commit=True)
        # All of it uploaded, so the replica has it before the consumer starts.
        end = high_watermark(one.bootstrap, partition)
        wait_until(lambda: uploaded_end(z.url, TOPIC, partition) >= end, 15, "uploaded")
        committed = values(0, 100) + values(150, 100)
        reader = consumer(
            one.bootstrap, **{"client.rack": "b", "isolation.level": "read_committed"}
        )
        reader.assign([TopicPartition(TOPIC, partition, 0)])
        try:
            got = read(reader, 200)
            # The open transaction holds the rest back, and is not shown: it aborts now,
            # and the next records the consumer returns are those committed after it.
            holder.abort_transaction(60)
            got += read(reader, 50)
        finally:
            reader.close()
        assert [value for _, value in got] == committed + values(250, 50)
        offsets = [offset for offset, _ in got]
        assert offsets == sorted(set(offsets))
        sent_two = zone_bytes_out(metrics_two, "b")
        assert sent_two >= sum(len(v) for v in committed + values(250, 50))
        assert zone_bytes_out(metrics_one, "b") == 0  # not a record byte crossed zones
        # The Java client the same way.
        java = java_client.run(
            ["consume", "--bootstrap", one.bootstrap, "--topic", TOPIC, "--count", "250",
             "--timeout-ms", "60000", "--isolation-level", "read_committed",
             "--config", "client.rack=b"],
            timeout=120,
            check=True,
        )  # fmt: skip
        assert [r[3] for r in java.records] == [v.decode() for v in committed + values(250, 50)]
        assert zone_bytes_out(metrics_two, "b") >= 2 * sent_two
        assert zone_bytes_out(metrics_one, "b") == 0


def test_a_killed_replica_sends_its_consumer_back_to_the_leader(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    with zoned(tmp_path, postgres_server) as z:
        one, two, partition = z.one, z.two, z.partition
        metrics_one, metrics_two = z.metrics_one, z.metrics_two
        produce(one.bootstrap, partition, values(0, 200))
        wait_until(lambda: uploaded_end(z.url, TOPIC, partition) == 200, 15, "uploaded")
        reader = consumer(one.bootstrap, **{"client.rack": "b"})
        reader.assign([TopicPartition(TOPIC, partition, 0)])
        try:
            got = read(reader, 200)
            assert zone_bytes_out(metrics_two, "b") > 0  # read from the replica
            assert zone_bytes_out(metrics_one, "b") == 0
            two.kill9()
            killed = time.monotonic()
            produce(one.bootstrap, partition, values(200, 100))
            got += read(reader, 100, timeout_s=90)
            back_s = time.monotonic() - killed
            print(f"replica killed: the rest read from the leader {back_s:.1f} s after")
        finally:
            reader.close()
        assert got == list(enumerate(values(0, 300)))
        assert zone_bytes_out(metrics_one, "b") > 0  # the rest came from the leader
