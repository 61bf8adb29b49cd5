"""Consumer groups driven by real clients: confluent-kafka (librdkafka) and kafka-python."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from tests.groups.support import Broker, wait_until

PARTITIONS = 6

# kafka-python reads its protocol schemas through a deprecated importlib API.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    process = Broker(tmp_path_factory.mktemp("clients") / "broker").start()
    yield process
    process.stop()


def create_topic(bootstrap: str, partitions: int = PARTITIONS) -> str:
    name = f"t-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(name, num_partitions=partitions)]).values():
        future.result(10)
    return name


def produce(bootstrap: str, topic: str, count: int, partitions: int = PARTITIONS) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for i in range(count):
        producer.produce(topic, value=f"m{i}".encode(), partition=i % partitions)
    assert producer.flush(15) == 0


def consumer(bootstrap: str, group: str, **extra: object) -> Consumer:
    config = {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 300,
        "topic.metadata.refresh.interval.ms": 1000,
    }
    config.update(extra)
    return Consumer(config)


def poll_all(consumers: list[Consumer], seen: list[tuple[int, int]] | None = None) -> None:
    for c in consumers:
        message = c.poll(0.05)
        if message is not None and message.error() is None and seen is not None:
            seen.append((message.partition(), message.offset()))


def assignment_sets(consumers: list[Consumer]) -> list[set[int]]:
    return [{tp.partition for tp in c.assignment()} for c in consumers]


def balanced(consumers: list[Consumer]) -> bool:
    """Every partition assigned exactly once, and every consumer has some."""
    sets = assignment_sets(consumers)
    flat = [p for s in sets for p in s]
    return sorted(flat) == list(range(PARTITIONS)) and all(sets)


def test_confluent_three_members_rebalance_on_join_and_leave(broker: Broker) -> None:
    topic = create_topic(broker.bootstrap)
    group = f"g-{uuid.uuid4().hex[:8]}"
    members: list[Consumer] = []
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    try:
        for size in (1, 2, 3):
            c = consumer(broker.bootstrap, group)
            c.subscribe([topic])
            members.append(c)
            assert wait_until(lambda: balanced(members), 20, lambda: poll_all(members)), (
                size,
                assignment_sets(members),
            )
        assert [len(s) for s in assignment_sets(members)] == [2, 2, 2]
        description = admin.describe_consumer_groups([group])[group].result(10)
        assert len(description.members) == 3
        assert str(description.state).endswith("STABLE")
        for _ in range(2):
            leaving = members.pop(0)
            leaving.close()
            assert wait_until(lambda: balanced(members), 20, lambda: poll_all(members)), (
                assignment_sets(members)
            )
        assert assignment_sets(members) == [set(range(PARTITIONS))]
    finally:
        for c in members:
            c.close()
    # All gone: the group is Empty (it stays listed, as in Kafka).
    listed = {g.group_id: g for g in admin.list_consumer_groups().result(10).valid}
    assert str(listed[group].state).endswith("EMPTY")


def test_confluent_commit_and_resume(broker: Broker) -> None:
    topic = create_topic(broker.bootstrap)
    group = f"g-{uuid.uuid4().hex[:8]}"
    produce(broker.bootstrap, topic, 120)
    first_seen: list[tuple[int, int]] = []
    first = consumer(broker.bootstrap, group)
    first.subscribe([topic])
    assert wait_until(lambda: len(first_seen) >= 50, 20, lambda: poll_all([first], first_seen))
    first.commit(asynchronous=False)
    committed = first.committed([TopicPartition(topic, p) for p in range(PARTITIONS)], 10)
    first.close()
    positions = {tp.partition: tp.offset for tp in committed}
    # Each partition's committed offset is one past the last message delivered from it.
    for partition in range(PARTITIONS):
        delivered = [o for p, o in first_seen if p == partition]
        assert positions[partition] == (max(delivered) + 1 if delivered else -1001)

    second_seen: list[tuple[int, int]] = []
    second = consumer(broker.bootstrap, group)
    second.subscribe([topic])
    try:
        assert wait_until(
            lambda: len(first_seen) + len(second_seen) >= 120,
            20,
            lambda: poll_all([second], second_seen),
        )
    finally:
        second.close()
    assert not set(first_seen) & set(second_seen)  # resumed, no re-delivery
    assert len(set(first_seen) | set(second_seen)) == 120


def test_confluent_admin_offsets_on_empty_group(broker: Broker) -> None:
    from confluent_kafka import ConsumerGroupTopicPartitions

    topic = create_topic(broker.bootstrap, partitions=2)
    group = f"g-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    request = ConsumerGroupTopicPartitions(
        group, [TopicPartition(topic, 0, 5), TopicPartition(topic, 1, 9)]
    )
    altered = admin.alter_consumer_group_offsets([request])[group].result(10)
    assert all(tp.error is None for tp in altered.topic_partitions)
    listed = admin.list_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(group, [TopicPartition(topic, 0), TopicPartition(topic, 1)])]
    )[group].result(10)
    assert sorted((tp.partition, tp.offset) for tp in listed.topic_partitions) == [(0, 5), (1, 9)]
    admin.delete_consumer_groups([group])[group].result(10)
    with pytest.raises(KafkaException) as excinfo:
        admin.delete_consumer_groups([group])[group].result(10)
    assert "GROUP_ID_NOT_FOUND" in str(excinfo.value)


def test_confluent_delete_active_group_is_refused(broker: Broker) -> None:
    topic = create_topic(broker.bootstrap, partitions=1)
    group = f"g-{uuid.uuid4().hex[:8]}"
    c = consumer(broker.bootstrap, group)
    c.subscribe([topic])
    try:
        assert wait_until(lambda: bool(c.assignment()), 20, lambda: poll_all([c]))
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        with pytest.raises(KafkaException) as excinfo:
            admin.delete_consumer_groups([group])[group].result(10)
        assert "NON_EMPTY_GROUP" in str(excinfo.value)
    finally:
        c.close()


def test_confluent_static_member_restart_keeps_assignment_without_rebalance(
    broker: Broker,
) -> None:
    topic = create_topic(broker.bootstrap)
    group = f"g-{uuid.uuid4().hex[:8]}"
    events: list[str] = []

    def on_assign(c: Consumer, partitions: list[TopicPartition]) -> None:
        events.append("assign")

    def on_revoke(c: Consumer, partitions: list[TopicPartition]) -> None:
        events.append("revoke")

    a = consumer(broker.bootstrap, group, **{"group.instance.id": "a"})
    a.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke)
    b = consumer(broker.bootstrap, group, **{"group.instance.id": "b"})
    b.subscribe([topic])
    members = [a, b]
    try:
        assert wait_until(lambda: balanced(members), 20, lambda: poll_all(members))
        before = assignment_sets(members)
        events.clear()
        b.close()  # a static member sends no LeaveGroup: the group keeps its slot
        b = consumer(broker.bootstrap, group, **{"group.instance.id": "b"})
        b.subscribe([topic])
        members = [a, b]
        assert wait_until(lambda: balanced(members), 20, lambda: poll_all(members))
        for _ in range(10):
            poll_all(members)
        assert assignment_sets(members) == before
        assert events == []  # a was never revoked: no rebalance happened
    finally:
        for c in members:
            c.close()


def test_kafka_python_consumer_group(broker: Broker) -> None:
    from kafka import KafkaConsumer
    from kafka import TopicPartition as KTopicPartition

    topic = create_topic(broker.bootstrap)
    group = f"g-{uuid.uuid4().hex[:8]}"
    produce(broker.bootstrap, topic, 60)

    def make() -> KafkaConsumer:
        c = KafkaConsumer(
            bootstrap_servers=broker.bootstrap,
            group_id=group,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            session_timeout_ms=6000,
            heartbeat_interval_ms=300,
        )
        c.subscribe([topic])
        return c

    members = [make(), make()]
    seen: set[tuple[int, int]] = set()

    def step() -> None:
        for c in members:
            for records in c.poll(timeout_ms=50).values():
                seen.update((r.partition, r.offset) for r in records)

    def covered() -> bool:
        sets = [{tp.partition for tp in c.assignment()} for c in members]
        flat = sorted(p for s in sets for p in s)
        return flat == list(range(PARTITIONS)) and all(sets) and len(seen) == 60

    try:
        assert wait_until(covered, 30, step), [c.assignment() for c in members]
        for c in members:
            c.commit()
        offsets = {p: members[0].committed(KTopicPartition(topic, p)) for p in range(PARTITIONS)}
        assert offsets == {p: 10 for p in range(PARTITIONS)}
    finally:
        for c in members:
            c.close()


def test_committed_offsets_survive_restart(tmp_path: Path) -> None:
    broker = Broker(tmp_path / "restart").start()
    try:
        topic = create_topic(broker.bootstrap, partitions=3)
        group = "restart-group"
        produce(broker.bootstrap, topic, 30, partitions=3)
        seen: list[tuple[int, int]] = []
        c = consumer(broker.bootstrap, group)
        c.subscribe([topic])
        assert wait_until(lambda: len(seen) >= 30, 20, lambda: poll_all([c], seen))
        c.commit(asynchronous=False)
        c.close()

        broker.stop()
        broker.start()

        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        listed = {g.group_id: g for g in admin.list_consumer_groups().result(10).valid}
        assert str(listed[group].state).endswith("EMPTY")
        description = admin.describe_consumer_groups([group])[group].result(10)
        assert str(description.state).endswith("EMPTY")

        fresh = consumer(broker.bootstrap, group)
        try:
            committed = fresh.committed([TopicPartition(topic, p) for p in range(3)], 10)
            assert {tp.partition: tp.offset for tp in committed} == {0: 10, 1: 10, 2: 10}
            # A member resumes there: new messages only. Two per partition: a partition is
            # delivered in offset order, so once its offset 11 is in, nothing before it
            # (a resumption below the committed offset) can still arrive.
            produce(broker.bootstrap, topic, 6, partitions=3)
            after: list[tuple[int, int]] = []
            fresh.subscribe([topic])
            last = {(0, 11), (1, 11), (2, 11)}
            assert wait_until(lambda: last <= set(after), 20, lambda: poll_all([fresh], after))
            assert sorted(after) == [(p, o) for p in range(3) for o in (10, 11)]
        finally:
            fresh.close()
    finally:
        broker.stop()


def test_aiokafka_consumer_group(broker: Broker) -> None:
    import asyncio

    from aiokafka import AIOKafkaConsumer
    from aiokafka import TopicPartition as ATopicPartition

    topic = create_topic(broker.bootstrap, partitions=3)
    group = f"g-{uuid.uuid4().hex[:8]}"
    produce(broker.bootstrap, topic, 30, partitions=3)

    async def main() -> None:
        members = [
            AIOKafkaConsumer(
                topic,
                bootstrap_servers=broker.bootstrap,
                group_id=group,
                auto_offset_reset="earliest",
                enable_auto_commit=False,
                session_timeout_ms=6000,
                heartbeat_interval_ms=300,
            )
            for _ in range(2)
        ]
        for c in members:
            await c.start()
        seen: set[tuple[int, int]] = set()
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                for c in members:
                    batches = await c.getmany(timeout_ms=50)
                    for tp, records in batches.items():
                        seen.update((tp.partition, r.offset) for r in records)
                sets = [{tp.partition for tp in c.assignment()} for c in members]
                flat = sorted(p for s in sets for p in s)
                if len(seen) == 30 and flat == [0, 1, 2] and all(sets):
                    break
            assert len(seen) == 30 and all(sets), sets
            for c in members:
                await c.commit()
            committed = {p: await members[0].committed(ATopicPartition(topic, p)) for p in range(3)}
            assert committed == {0: 10, 1: 10, 2: 10}
        finally:
            for c in members:
                await c.stop()

    asyncio.run(main())
