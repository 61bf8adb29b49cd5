"""The consumer group probes: join, consume, commit, and the committed offsets read back
by the member and by the admin API; offsets written for an empty group (a rollback)."""

from __future__ import annotations

from contextplane.cli import group_committed
from contextplane.cli.group_committed import Committed, Partition
from contextplane.cli.probes.base import ProbeContext, ProbeFailure
from contextplane.cli.probes.clients import Record, poll, produce

_PARTITIONS = 2
_PER_PARTITION = 5


def _filled_topic(ctx: ProbeContext) -> str:
    """A topic of the probe's own with `_PER_PARTITION` records in each partition."""
    topic = ctx.create_topic(partitions=_PARTITIONS)
    records = [
        Record(b"%d" % i, partition=p) for p in range(_PARTITIONS) for i in range(_PER_PARTITION)
    ]
    produce(ctx, topic, records)
    return topic


def _fetched(ctx: ProbeContext, group: str, topic: str) -> dict[Partition, Committed]:
    """`group`'s committed offsets of the probe topic's partitions, read by an admin
    client's OffsetFetch through kafka-python: librdkafka's crashes the process on a
    coordinator error (cli/group_committed.py), which a Kafka whose group coordinator is
    still loading answers here."""
    asked = [(topic, p) for p in range(_PARTITIONS)]
    return group_committed.connected(
        ctx.client_config(),
        lambda admin: group_committed.committed(admin, group, asked, f"offsets of group {group!r}"),
    )


def consumer_group(ctx: ProbeContext) -> str:
    from confluent_kafka import Consumer, TopicPartition

    topic = _filled_topic(ctx)
    group = ctx.group()
    consumer = Consumer(
        ctx.client_config(
            **{
                "group.id": group,
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
    )
    try:
        consumer.subscribe([topic])
        messages = poll(ctx, consumer, _PARTITIONS * _PER_PARTITION)
        assigned = sorted(part.partition for part in consumer.assignment())
        if assigned != list(range(_PARTITIONS)):
            raise ProbeFailure(f"the only member was assigned partitions {assigned}")
        consumer.commit(asynchronous=False)
        expected = {p: _PER_PARTITION for p in range(_PARTITIONS)}
        wanted = [TopicPartition(topic, p) for p in range(_PARTITIONS)]
        committed = {
            part.partition: part.offset
            for part in consumer.committed(wanted, timeout=ctx.remaining_s())
        }
        if committed != expected:
            raise ProbeFailure(f"committed offsets read back {committed}, expected {expected}")
    finally:
        consumer.close()  # leaves the group, so that its offsets can be deleted after
    by_admin = {
        partition: found.offset for (_, partition), found in _fetched(ctx, group, topic).items()
    }
    if by_admin != expected:
        raise ProbeFailure(f"OffsetFetch (admin) read back {by_admin}, expected {expected}")
    return (
        f"joined a group, was assigned both partitions, consumed {len(messages)} records, "
        f"committed offsets {expected} read back by the member and the admin API"
    )


def group_offsets(ctx: ProbeContext) -> str:
    """What a rollback (mirror back) writes: a group that has no members gets offsets by
    the admin API (OffsetCommit), read back by OffsetFetch, and a member that joins it
    starts at them."""
    from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, TopicPartition

    topic = _filled_topic(ctx)
    group = ctx.group()
    written = {0: 1, 1: _PER_PARTITION - 1}
    wanted = [TopicPartition(topic, p, offset) for p, offset in written.items()]
    admin = ctx.admin()
    ctx.answer(
        admin.alter_consumer_group_offsets(
            [ConsumerGroupTopicPartitions(group, wanted)], request_timeout=ctx.remaining_s()
        )[group],
        f"OffsetCommit for the empty group {group!r}",
    )
    fetched = {
        partition: found.offset for (_, partition), found in _fetched(ctx, group, topic).items()
    }
    if fetched != written:
        raise ProbeFailure(f"OffsetFetch read back {fetched}, written {written}")
    # Where the written offsets were not kept, the member would start at the end.
    config = {"group.id": group, "auto.offset.reset": "latest", "enable.auto.commit": False}
    member = Consumer(ctx.client_config(**config))
    try:
        member.subscribe([topic])
        expected = sum(_PER_PARTITION - offset for offset in written.values())
        first: dict[int, int] = {}
        for message in poll(ctx, member, expected):
            first.setdefault(message.partition(), message.offset())
    finally:
        member.close()
    if first != written:
        raise ProbeFailure(f"a joining member started at {first}, written {written}")
    return (
        f"offsets {written} written for an empty group by the admin API (OffsetCommit), "
        "read back by OffsetFetch, and a joining member started at them"
    )
