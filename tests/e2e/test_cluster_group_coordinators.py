"""Group coordinators across brokers (RFC 0004 §3, slice 3): two brokers on one
PostgreSQL and one file:// object store, a confluent-kafka consumer group committing
through the coordinator of its `__consumer_offsets` shard.

- kill -9 of the coordinator's broker (two broker processes): the shard moves to the
  other broker, which answers FindCoordinator; the committed offsets read through it are
  exactly those committed before the kill, and the consumer goes on from them to the end;
- a planned move of the shard (two in-process brokers, the controller's `move`): the old
  coordinator hands the shard over, the new one serves the group with every offset, and
  the consumer goes on to the end.
"""

from __future__ import annotations

import time
from pathlib import Path

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from contextplane.protocol.offsets_records import OFFSETS_TOPIC, partition_for
from tests.e2e.test_cluster_failover import broker, listed_brokers, stored
from tests.support.inprocess import InProcessBroker
from tests.support.postgres import PostgresServer
from tests.support.rawclient import RawClient
from tests.support.wait import wait_until

SHARDS = 4
PARTITIONS = 4
PER_PARTITION = 100
FIND_COORDINATOR = 10
NOT_COORDINATOR = 16


def coordinator_of(bootstrap: str, group: str) -> tuple[int, int]:
    """(error code, node id) of FindCoordinator v3 for `group` at `bootstrap`."""
    with RawClient(bootstrap) as raw:
        answer = raw.request(FIND_COORDINATOR, 3, key=group, key_type=0)
    return int(answer.error_code), int(answer.node_id)


def fill(bootstrap: str, topic: str, url: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})  # kept until the result
    admin.create_topics([NewTopic(topic, PARTITIONS, 1)])[topic].result(30)
    wait_until(
        lambda: all(r["leader"] == r["target"] != -1 for r in stored(url, topic).values()),
        15,
        "each broker claims its share",
    )
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    for p in range(PARTITIONS):
        for i in range(PER_PARTITION):
            producer.produce(topic, value=f"{p}-{i}".encode(), partition=p)
    assert producer.flush(60) == 0
    # All in objects: the partitions of a killed broker move (clean, RFC 0004 §5).
    wait_until(lambda: all(r["dirty"] == 0 for r in stored(url, topic).values()), 30, "uploaded")


def committed_offsets(consumer: Consumer, topic: str) -> dict[int, int]:
    """The group's committed offsets as its coordinator answers; a NOT_COORDINATOR
    answer (librdkafka raises it while it finds the coordinator again) is asked again."""
    wanted = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    deadline = time.monotonic() + 30
    while True:
        try:
            committed = consumer.committed(wanted, timeout=30)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.NOT_COORDINATOR or time.monotonic() > deadline:
                raise
            time.sleep(0.2)
            continue
        return {tp.partition: tp.offset for tp in committed if tp.offset >= 0}


class Member:
    """A consumer group member committing each record's next offset synchronously."""

    def __init__(self, bootstrap: str, group: str, topic: str) -> None:
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": group,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "topic.metadata.refresh.interval.ms": 500,
            }
        )
        self.consumer.subscribe([topic])
        self.topic = topic
        self.seen: list[tuple[int, int]] = []
        self.committed: dict[int, int] = {}
        self.failed_commits = 0

    def consume(self, count: int, timeout_s: float = 90) -> None:
        """Read and commit until `count` records were seen in all."""
        deadline = time.monotonic() + timeout_s
        while len(self.seen) < count and time.monotonic() < deadline:
            message = self.consumer.poll(0.5)
            if message is None or message.error():
                continue
            self.seen.append((message.partition(), message.offset()))
            tp = TopicPartition(self.topic, message.partition(), message.offset() + 1)
            try:
                for done in self.consumer.commit(offsets=[tp], asynchronous=False) or []:
                    if done.error is None:
                        self.committed[done.partition] = done.offset
            except Exception:  # noqa: BLE001 - the coordinator moving; the next one goes in
                self.failed_commits += 1
        assert len(self.seen) >= count, f"{len(self.seen)} of {count} records read"

    def stored_offsets(self) -> dict[int, int]:
        return committed_offsets(self.consumer, self.topic)

    def check_continued(self) -> None:
        """Each record from where its partition's commits left off, through the end, is
        read after the move (duplicates allowed: at least once), none skipped."""
        for p in range(PARTITIONS):
            offsets = sorted({o for q, o in self.seen if q == p})
            assert offsets == list(range(PER_PARTITION)), f"partition {p}: {offsets[:5]}..."
        assert self.stored_offsets() == {p: PER_PARTITION for p in range(PARTITIONS)}


def test_the_coordinators_broker_killed_the_group_moves_with_every_committed_offset(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    url = postgres_server.create_database()
    (tmp_path / "objects").mkdir()
    objects = (tmp_path / "objects").as_uri()
    shards = {"offsets.topic.num.partitions": str(SHARDS)}
    one = broker(tmp_path / "one", 1, url, objects, **shards).start()
    two = broker(tmp_path / "two", 2, url, objects, **shards).start()
    member: Member | None = None
    try:
        wait_until(lambda: listed_brokers(one.bootstrap) == [1, 2], 15, "both listed")
        fill(one.bootstrap, "events", url)
        group = "billing"
        shard = partition_for(group, SHARDS)
        # Broker 1 created __consumer_offsets alone: it leads every shard.
        assert stored(url, OFFSETS_TOPIC)[shard]["leader"] == 1
        assert coordinator_of(two.bootstrap, group) == (0, 1)
        member = Member(f"{one.bootstrap},{two.bootstrap}", group, "events")
        member.consume(PER_PARTITION * PARTITIONS // 2)
        before = member.stored_offsets()
        assert before == member.committed and sum(before.values()) >= PER_PARTITION
        epoch = stored(url, OFFSETS_TOPIC)[shard]["epoch"]

        one.kill9()
        killed = time.monotonic()
        wait_until(
            lambda: stored(url, OFFSETS_TOPIC)[shard]["leader"] == 2, 30, "broker 2 takes it"
        )
        claimed_s = time.monotonic() - killed
        assert stored(url, OFFSETS_TOPIC)[shard]["epoch"] > epoch
        wait_until(lambda: coordinator_of(two.bootstrap, group) == (0, 2), 15, "found on 2")
        found_s = time.monotonic() - killed
        # Nothing committed before the kill is lost: broker 2 reads the same offsets.
        reader = Consumer({"bootstrap.servers": two.bootstrap, "group.id": group})
        try:
            after = committed_offsets(reader, "events")
        finally:
            reader.close()
        assert after == before
        member.consume(PER_PARTITION * PARTITIONS)  # goes on (duplicates allowed)
        member.check_continued()
        print(f"coordinator kill -9: shard claimed {claimed_s:.2f} s, FindCoordinator answers"
              f" it {found_s:.2f} s after the kill (session 1,500 ms, the controller killed"
              f" too); {member.failed_commits} commits failed during the move")  # fmt: skip
    finally:
        if member is not None:
            member.consumer.close()
        two.stop()
        one.stop()


def in_process(data_dir: Path, node_id: int, url: str, objects: str) -> InProcessBroker:
    return InProcessBroker(
        data_dir,
        object_store=objects,
        settings={
            "metadata.url": url,
            "node.id": str(node_id),
            "broker.heartbeat.interval.ms": "200",
            "broker.session.timeout.ms": "3000",
            "group.initial.rebalance.delay.ms": "0",
            "offsets.topic.num.partitions": str(SHARDS),
        },
    )


def test_a_planned_move_of_the_shard_keeps_the_group_and_its_offsets(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    url = postgres_server.create_database()
    (tmp_path / "objects").mkdir()
    objects = (tmp_path / "objects").as_uri()
    one = in_process(tmp_path / "one", 1, url, objects).start()
    two = in_process(tmp_path / "two", 2, url, objects).start()
    member: Member | None = None
    try:
        wait_until(lambda: listed_brokers(one.bootstrap) == [1, 2], 15, "both listed")
        fill(one.bootstrap, "orders", url)
        group = "shipping"
        shard = partition_for(group, SHARDS)
        row = stored(url, OFFSETS_TOPIC)[shard]
        assert row["leader"] == 1
        member = Member(f"{one.bootstrap},{two.bootstrap}", group, "orders")
        member.consume(PER_PARTITION * PARTITIONS // 2)
        before = member.stored_offsets()
        assert before == member.committed

        stream_id = one.call(one.broker.metadata.partitions(OFFSETS_TOPIC))[shard].stream_id  # type: ignore[union-attr]
        one.call(one.broker.controller.move({stream_id: 2}))  # type: ignore[union-attr]
        wait_until(
            lambda: stored(url, OFFSETS_TOPIC)[shard]["leader"] == 2, 30, "broker 2 leads it"
        )
        wait_until(lambda: coordinator_of(one.bootstrap, group) == (0, 2), 15, "found on 2")
        groups_one = one.broker.groups  # type: ignore[union-attr]
        assert shard not in groups_one.shards.loaded
        assert one.call(groups_one.fetch_offsets(group, None))[0] == NOT_COORDINATOR
        wait_until(
            lambda: shard in two.broker.groups.shards.loaded,  # type: ignore[union-attr]
            15,
            "loaded on 2",
        )
        assert member.stored_offsets() == before
        member.consume(PER_PARTITION * PARTITIONS)
        member.check_continued()
        print(f"planned move: {member.failed_commits} commits failed during the move")
    finally:
        if member is not None:
            member.consumer.close()
        two.stop()
        one.stop()
