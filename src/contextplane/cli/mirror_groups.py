"""Consumer group offsets copied from the source to the target: each group's committed
offsets on the mirrored topics, read with OffsetFetch on the source and written with
OffsetCommit on the target (confluent-kafka's admin calls). An offset is copied only
once the mirror has appended past it, so a consumer that moves to the target never
starts beyond what is there; a later round copies it. Offsets only move forward: a
partition the group has committed further on the target (its consumers moved over and
went on) keeps the target's offset, so running the mirror again never rewinds them."""

from __future__ import annotations

from typing import Any

from contextplane.cli.kafka_client import CommandError, answer, kafka_error_text


def source_groups(admin: Any, named: list[str] | None) -> list[str]:
    """The groups named, else every consumer group of the source."""
    if named:
        return named
    listed = answer(admin.list_consumer_groups(), "listing the source's consumer groups")
    return sorted(group.group_id for group in listed.valid)


def copy_offsets(
    source: Any,
    target: Any,
    groups: list[str],
    mirrored: dict[tuple[str, int], int],
) -> dict[str, dict[str, int]]:
    """Copy what `groups` committed on the mirrored partitions; per group, the offsets
    copied as {"topic:partition": offset}."""
    from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition

    copied: dict[str, dict[str, int]] = {}
    for group in groups:
        request = ConsumerGroupTopicPartitions(group)
        fetched = answer(
            source.list_consumer_group_offsets([request])[group],
            f"offsets of group {group} on the source",
        )
        on_target = _committed(target, group, fetched.topic_partitions)
        ready = [
            TopicPartition(tp.topic, tp.partition, tp.offset)
            for tp in fetched.topic_partitions
            if tp.offset >= 0
            and tp.offset <= mirrored.get((tp.topic, tp.partition), -1)
            and tp.offset > on_target.get((tp.topic, tp.partition), -1)
        ]
        if not ready:
            continue
        committed = answer(
            target.alter_consumer_group_offsets([ConsumerGroupTopicPartitions(group, ready)])[
                group
            ],
            f"committing group {group}'s offsets on the target",
        )
        for tp in committed.topic_partitions:
            if tp.error is not None:
                raise CommandError(
                    f"committing group {group}'s offset of {tp.topic}-{tp.partition} on the "
                    f"target: {kafka_error_text(tp.error)}"
                )
        copied[group] = {
            f"{tp.topic}:{tp.partition}": tp.offset for tp in committed.topic_partitions
        }
    return copied


def _committed(target: Any, group: str, partitions: list[Any]) -> dict[tuple[str, int], int]:
    """What `group` has committed on the target for `partitions` (-1 where nothing)."""
    from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition

    asked = [TopicPartition(tp.topic, tp.partition) for tp in partitions]
    if not asked:
        return {}
    fetched = answer(
        target.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group, asked)])[group],
        f"offsets of group {group} on the target",
    )
    return {(tp.topic, tp.partition): tp.offset for tp in fetched.topic_partitions}
