"""Two brokers on one PostgreSQL and one object store (RFC 0004 slice 1): a topic created
on the first is spread over both as the placement function says, each claiming its share;
confluent-kafka, knowing only the first broker, produces to every partition (it follows
Metadata to the leaders); a partition moved by the controller under an idempotent acks=all
producer loses nothing, its offsets stay contiguous, its retained objects are the same
objects after the move (nothing copied: the new leader read none, the old one uploaded
only its tail) and the producer follows it to its new leader."""

from __future__ import annotations

import time
from pathlib import Path

import psycopg
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from contextplane.cluster.assignment_plan import Candidate, place
from tests.support.moving_producer import MovingProducer, two_brokers
from tests.support.postgres import PostgresServer
from tests.support.wait import wait_until

PARTITIONS = 8


def partitions(url: str, topic: str) -> dict[int, tuple[int, int, int, int]]:
    """partition -> (stream id, leader, epoch, target) as stored."""
    with psycopg.connect(url) as db:
        rows = db.execute(
            "SELECT partition, stream_id, leader_node, leader_epoch, target_node"
            " FROM partitions WHERE topic=%s",
            (topic,),
        )
        return {r[0]: (r[1], r[2], r[3], r[4]) for r in rows}


def ranges(url: str, stream_id: int) -> list[tuple[int, int, str]]:
    with psycopg.connect(url) as db:
        rows = db.execute(
            "SELECT r.base_offset, r.end_offset, o.key FROM ranges r JOIN objects o"
            " ON o.object_id = r.object_id WHERE r.stream_id=%s ORDER BY r.base_offset",
            (stream_id,),
        )
        return [(r[0], r[1], r[2]) for r in rows]


def read_all(bootstrap: str, topic: str, partition: int, count: int) -> list[tuple[int, bytes]]:
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "check", "enable.auto.commit": False}
    )
    consumer.assign([TopicPartition(topic, partition, 0)])
    read: list[tuple[int, bytes]] = []
    deadline = time.monotonic() + 60
    try:
        while len(read) < count and time.monotonic() < deadline:
            message = consumer.poll(1)
            if message is None or message.error():
                continue
            read.append((message.offset(), message.value()))
    finally:
        consumer.close()
    return read


def test_topics_spread_over_the_brokers_and_a_planned_move_copies_nothing(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    url = postgres_server.create_database()
    with two_brokers(tmp_path, url) as (one, two):
        assert one.broker is not None and two.broker is not None
        registry = one.broker.registry
        assert registry is not None
        assert registry.is_controller  # the first to start took the controller

        admin = AdminClient({"bootstrap.servers": one.bootstrap})
        admin.create_topics([NewTopic("spread", PARTITIONS, 1)])["spread"].result(30)
        stored = partitions(url, "spread")
        planned = place(
            [s for s, *_ in stored.values()], [Candidate(1, "rack-1"), Candidate(2, "rack-2")]
        )
        assert {p: row[3] for p, row in stored.items()} == {
            p: planned[row[0]] for p, row in stored.items()
        }
        assert set(planned.values()) == {1, 2}, "eight partitions, both brokers"
        wait_until(
            lambda: all(row[1] == row[3] for row in partitions(url, "spread").values()),
            10,
            "each broker claims its share",
        )
        # Both brokers name the same leaders, and Kafka's client follows them.
        cluster = admin.describe_cluster().result(30)
        assert cluster.controller.id == 1
        producer = Producer({"bootstrap.servers": one.bootstrap, "acks": "all"})
        delivered: list[tuple[int, int]] = []

        def on_delivery(error: object, message: object) -> None:
            assert error is None, error
            delivered.append((message.partition(), message.offset()))  # type: ignore[attr-defined]

        for p in range(PARTITIONS):
            producer.produce("spread", value=b"first", partition=p, on_delivery=on_delivery)
        assert producer.flush(30) == 0
        assert sorted(delivered) == [(p, 0) for p in range(PARTITIONS)]

        # A planned move of a partition broker 1 leads, under an idempotent producer.
        moved = next(p for p, row in sorted(stored.items()) if row[3] == 1)
        stream_id = stored[moved][0]
        epoch_before = partitions(url, "spread")[moved][2]
        mover = MovingProducer(one.bootstrap, "spread", moved).start()
        acked, errors = mover.acked, mover.errors
        wait_until(lambda: len(acked) >= 200, 30, "the producer is going")
        wait_until(lambda: len(ranges(url, stream_id)) >= 2, 30, "some data is in objects")
        retained = ranges(url, stream_id)
        gets_before = two.broker.storage.objects.gets  # type: ignore[union-attr]
        one.call(one.broker.controller.move({stream_id: 2}))  # type: ignore[union-attr]
        wait_until(
            lambda: partitions(url, "spread")[moved][1:3] == (2, epoch_before + 1),
            30,
            "broker 2 leads the moved partition",
        )
        gets_during = two.broker.storage.objects.gets - gets_before  # type: ignore[union-attr]
        count_at_move = len(acked)
        wait_until(lambda: len(acked) >= count_at_move + 200, 30, "the producer follows it")
        mover.stop()
        assert errors == []

        # Nothing lost, offsets contiguous, each value once and in order.
        assert sorted(acked) == list(range(1, len(acked) + 1))  # offset 0 is "first"
        read = read_all(two.bootstrap, "spread", moved, len(acked) + 1)
        assert [offset for offset, _ in read] == list(range(len(acked) + 1))
        assert [value for _, value in read[1:]] == [f"m{n}".encode() for n in range(len(acked))]
        # Nothing copied: the ranges retained before the move are the same objects after
        # it, and the new leader read no object to take the partition over.
        after = ranges(url, stream_id)
        assert after[: len(retained)] == retained
        assert gets_during == 0
        with psycopg.connect(url) as db:
            assert db.execute("SELECT COUNT(*) FROM reassignments").fetchone() == (0,)

        # A quiet move back, its data all in objects: the object store sees no request
        # and no new object; the partition is served from the same objects.
        wait_until(
            lambda: one.broker.storage.pending_bytes == two.broker.storage.pending_bytes == 0,  # type: ignore[union-attr]
            30,
            "everything is uploaded",
        )
        files = sorted(f.name for f in (tmp_path / "objects").rglob("*") if f.is_file())
        served_from = ranges(url, stream_id)
        stores = [b.broker.storage.objects for b in (one, two)]  # type: ignore[union-attr]
        requests = [(s.puts, s.gets) for s in stores]  # type: ignore[attr-defined]
        epoch = partitions(url, "spread")[moved][2]
        one.call(one.broker.controller.move({stream_id: 1}))  # type: ignore[union-attr]
        wait_until(
            lambda: partitions(url, "spread")[moved][1:3] == (1, epoch + 1),
            30,
            "broker 1 leads the partition again",
        )
        assert [(s.puts, s.gets) for s in stores] == requests  # type: ignore[attr-defined]
        assert sorted(f.name for f in (tmp_path / "objects").rglob("*") if f.is_file()) == files
        assert ranges(url, stream_id) == served_from
        again = read_all(one.bootstrap, "spread", moved, len(acked) + 1)
        assert again == read
