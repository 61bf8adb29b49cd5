"""Share groups across brokers (RFC 0004 slice 3): two broker processes on one
PostgreSQL and one file:// object store, a confluent-kafka share consumer reading a
topic spread over both. Broker 1 (which leads every `__consumer_offsets` shard, so
coordinates the share group, and leads half the partitions) is killed -9: broker 2 takes
the shard and the partitions, and the consumer goes on to read every record; no record
whose acknowledgement was committed before the kill is delivered again (only records
acquired and not acknowledged may be, as their locks allow). A group config set through
one broker holds on the other (each write moves `generation.topics`)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from confluent_kafka import Producer, ShareConsumer
from confluent_kafka.admin import AdminClient, NewTopic

from conformance import wire
from contextplane.protocol.offsets_records import OFFSETS_TOPIC, partition_for
from tests.e2e.test_cluster_failover import broker, listed_brokers, stored
from tests.e2e.test_cluster_group_coordinators import PARTITIONS, PER_PARTITION, SHARDS
from tests.support.broker import BrokerProcess
from tests.support.postgres import PostgresServer
from tests.support.rawclient import RawClient
from tests.support.wait import wait_until

Brokers = tuple[BrokerProcess, BrokerProcess]
GROUP_RESOURCE = 32  # Kafka's ConfigResource.Type.GROUP


def _read(consumer: ShareConsumer, seen: list[tuple[int, int]], count: int) -> None:
    """Poll (implicit acknowledgement) until `count` distinct records were seen."""
    deadline = time.monotonic() + 120
    while len(set(seen)) < count and time.monotonic() < deadline:
        for message in consumer.poll(0.5) or []:
            if message.error() is None:
                seen.append((message.partition(), message.offset()))
    assert len(set(seen)) >= count, f"{len(set(seen))} of {count} records read"


@contextmanager
def _two_brokers(tmp_path: Path, url: str) -> Iterator[tuple[Brokers, list[ShareConsumer]]]:
    """Brokers 1 and 2 (1 started first, so leading every `__consumer_offsets` shard) and
    topic `events`, its partitions claimed by both; the share consumers the test adds to
    the list are closed before the brokers stop."""
    (tmp_path / "objects").mkdir()
    objects = (tmp_path / "objects").as_uri()
    shards = {"offsets.topic.num.partitions": str(SHARDS)}
    one = broker(tmp_path / "one", 1, url, objects, **shards).start()
    two = broker(tmp_path / "two", 2, url, objects, **shards).start()
    consumers: list[ShareConsumer] = []
    try:
        wait_until(lambda: listed_brokers(one.bootstrap) == [1, 2], 15, "both listed")
        admin = AdminClient({"bootstrap.servers": one.bootstrap})
        admin.create_topics([NewTopic("events", PARTITIONS, 1)])["events"].result(30)
        wait_until(
            lambda: all(r["leader"] == r["target"] != -1 for r in stored(url, "events").values()),
            15,
            "each broker claims its share",
        )
        assert {r["leader"] for r in stored(url, "events").values()} == {1, 2}
        yield (one, two), consumers
    finally:
        for consumer in consumers:
            consumer.close()
        two.stop()
        one.stop()


def _share_consumer(brokers: Brokers, group: str, consumers: list[ShareConsumer]) -> ShareConsumer:
    bootstrap = ",".join(b.bootstrap for b in brokers)
    consumer = ShareConsumer({"bootstrap.servers": bootstrap, "group.id": group})
    consumers.append(consumer)
    consumer.subscribe(["events"])
    return consumer


def _assigned(broker: BrokerProcess, group: str, consumer: ShareConsumer) -> int:
    """After a poll: how many partitions the group's members are dealt."""
    assert not consumer.poll(0.5)
    with RawClient(broker.bootstrap) as client:
        described = client.request(77, 1, group_ids=[group], include_authorized_operations=False)
    members = described.groups[0].members
    return sum(len(t.partitions) for m in members for t in m.assignment.topic_partitions)


def _produce(url: str, bootstrap: str) -> None:
    """PER_PARTITION records into each partition, uploaded."""
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    for p in range(PARTITIONS):
        for i in range(PER_PARTITION):
            producer.produce("events", value=f"{p}-{i}".encode(), partition=p)
    assert producer.flush(60) == 0
    wait_until(lambda: all(r["dirty"] == 0 for r in stored(url, "events").values()), 30, "uploaded")


def test_the_share_coordinators_broker_killed_the_consumer_goes_on(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    url = postgres_server.create_database()
    with _two_brokers(tmp_path, url) as ((one, two), consumers):
        group = "shared-billing"
        shard = partition_for(group, SHARDS)
        assert stored(url, OFFSETS_TOPIC)[shard]["leader"] == 1
        consumer = _share_consumer((one, two), group, consumers)
        # The empty topic fetched first: every share partition starts at offset 0 (Kafka's
        # default share.auto.offset.reset, latest, on an empty log). The member is dealt
        # the partitions at its second heartbeat, as in Kafka (their state is initialized
        # after its join): polled until then, and a while after.
        seen: list[tuple[int, int]] = []
        wait_until(lambda: _assigned(one, group, consumer) == PARTITIONS, 60, "assigned")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            assert not consumer.poll(0.5)
        _produce(url, one.bootstrap)
        _read(consumer, seen, PER_PARTITION * PARTITIONS // 2)
        consumer.commit_sync(30)  # what was read is acknowledged (implicit mode)
        acknowledged = set(seen)

        one.kill9()
        wait_until(
            lambda: stored(url, OFFSETS_TOPIC)[shard]["leader"] == 2, 30, "broker 2 takes it"
        )
        after: list[tuple[int, int]] = []
        _read(consumer, after, PER_PARTITION * PARTITIONS - len(acknowledged))
        everything = {(p, o) for p in range(PARTITIONS) for o in range(PER_PARTITION)}
        assert acknowledged | set(after) == everything
        again = acknowledged & set(after)
        assert not again, f"acknowledged before the kill, delivered again: {sorted(again)[:5]}"
        print(f"share consumer: {len(acknowledged)} acknowledged before the kill,"
              f" {len(after)} deliveries after it")  # fmt: skip


def _group_config(bootstrap: str, group: str, name: str) -> str | None:
    """`name`'s value as the broker at `bootstrap` (that one: a client library may send
    DescribeConfigs to any broker) describes the group's configs."""
    with RawClient(bootstrap) as client:
        result = wire.describe_configs(client, GROUP_RESOURCE, group, [name])
    assert result.error_code == 0, result
    return next((c.value for c in result.configs if c.name == name), None)


def test_a_group_config_set_through_one_broker_holds_on_the_other(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    """`share.auto.offset.reset=earliest` set through broker 2, which does not coordinate
    the group (accepted, as Kafka's brokers forward it to the controller): broker 1, the
    coordinator and leader of half the partitions, reads it at its next heartbeat, so its
    share partitions too start at the records produced before the consumer joined."""
    url = postgres_server.create_database()
    with _two_brokers(tmp_path, url) as ((one, two), consumers):
        group, reset = "early-billing", "share.auto.offset.reset"
        assert stored(url, OFFSETS_TOPIC)[partition_for(group, SHARDS)]["leader"] == 1
        with RawClient(two.bootstrap) as client:  # that broker (see `_group_config`)
            altered = wire.incremental_alter_configs(
                client, group, [(reset, 0, "earliest")], resource_type=GROUP_RESOURCE
            )
        assert altered.error_code == 0, altered
        wait_until(
            lambda: _group_config(one.bootstrap, group, reset) == "earliest",
            15,
            "broker 1 describes the group's new config",
        )
        _produce(url, one.bootstrap)
        seen: list[tuple[int, int]] = []
        _read(_share_consumer((one, two), group, consumers), seen, PER_PARTITION * PARTITIONS)
        everything = {(p, o) for p in range(PARTITIONS) for o in range(PER_PARTITION)}
        assert set(seen) == everything
