"""Share groups across brokers (RFC 0004 slice 3): two broker processes on one
PostgreSQL and one file:// object store, a confluent-kafka share consumer reading a
topic spread over both. Broker 1 (which leads every `__consumer_offsets` shard, so
coordinates the share group, and leads half the partitions) is killed -9: broker 2 takes
the shard and the partitions, and the consumer goes on to read every record; no record
whose acknowledgement was committed before the kill is delivered again (only records
acquired and not acknowledged may be, as their locks allow)."""

from __future__ import annotations

import time
from pathlib import Path

from confluent_kafka import Producer, ShareConsumer
from confluent_kafka.admin import AdminClient, NewTopic

from contextplane.protocol.offsets_records import OFFSETS_TOPIC, partition_for
from tests.e2e.test_cluster_failover import broker, listed_brokers, stored
from tests.e2e.test_cluster_group_coordinators import PARTITIONS, PER_PARTITION, SHARDS
from tests.support.postgres import PostgresServer
from tests.support.wait import wait_until


def _read(consumer: ShareConsumer, seen: list[tuple[int, int]], count: int) -> None:
    """Poll (implicit acknowledgement) until `count` distinct records were seen."""
    deadline = time.monotonic() + 120
    while len(set(seen)) < count and time.monotonic() < deadline:
        for message in consumer.poll(0.5) or []:
            if message.error() is None:
                seen.append((message.partition(), message.offset()))
    assert len(set(seen)) >= count, f"{len(set(seen))} of {count} records read"


def test_the_share_coordinators_broker_killed_the_consumer_goes_on(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    url = postgres_server.create_database()
    (tmp_path / "objects").mkdir()
    objects = (tmp_path / "objects").as_uri()
    shards = {"offsets.topic.num.partitions": str(SHARDS)}
    one = broker(tmp_path / "one", 1, url, objects, **shards).start()
    two = broker(tmp_path / "two", 2, url, objects, **shards).start()
    consumer: ShareConsumer | None = None
    try:
        wait_until(lambda: listed_brokers(one.bootstrap) == [1, 2], 15, "both listed")
        admin = AdminClient({"bootstrap.servers": one.bootstrap})
        admin.create_topics([NewTopic("events", PARTITIONS, 1)])["events"].result(30)
        wait_until(
            lambda: all(r["leader"] == r["target"] != -1 for r in stored(url, "events").values()),
            15,
            "each broker claims its share",
        )
        group = "shared-billing"
        shard = partition_for(group, SHARDS)
        assert stored(url, OFFSETS_TOPIC)[shard]["leader"] == 1
        assert {r["leader"] for r in stored(url, "events").values()} == {1, 2}
        consumer = ShareConsumer(
            {"bootstrap.servers": f"{one.bootstrap},{two.bootstrap}", "group.id": group}
        )
        consumer.subscribe(["events"])
        # The empty topic fetched first: every share partition starts at offset 0 (Kafka's
        # default share.auto.offset.reset, latest, on an empty log).
        seen: list[tuple[int, int]] = []
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            assert not consumer.poll(0.5)
        producer = Producer({"bootstrap.servers": one.bootstrap, "acks": "all"})
        for p in range(PARTITIONS):
            for i in range(PER_PARTITION):
                producer.produce("events", value=f"{p}-{i}".encode(), partition=p)
        assert producer.flush(60) == 0
        wait_until(
            lambda: all(r["dirty"] == 0 for r in stored(url, "events").values()), 30, "uploaded"
        )
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
    finally:
        if consumer is not None:
            consumer.close()
        two.stop()
        one.stop()
