"""Consumer group offsets copied from the source to the target: each group's committed
offsets on the mirrored topics, read with OffsetFetch on the source (through kafka-python:
`group_committed.py` says why not by confluent-kafka's admin client) and written with
OffsetCommit on the target (confluent-kafka's admin call), with their commit metadata;
what the target has committed is read the same way before.
The source's leader epoch is not carried: MirrorAppend stamps the target leader's own
epoch on every batch, so the source's would name an epoch the target's log never had, and
a consumer validating its position against it (OffsetForLeaderEpoch) could take that for
a truncation and reset; without one it starts at the offset as given.

An offset is copied only once the mirror has appended past it, so a consumer that moves
to the target never starts beyond what is there; a later round copies it. A copy mirror's
target offsets differ from the source's: it gives a `Translate` (its offset map), and
the translated offset is committed and compared. Offsets only
move forward: a partition the group has committed further on the target (its consumers
moved over and went on) keeps the target's offset, so running the mirror again never
rewinds them. A group with members on the target is left alone (Kafka refuses an admin
commit to a group that is not empty) and tried again on the next pass."""

from __future__ import annotations

import concurrent.futures
import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from contextplane.cli import group_committed
from contextplane.cli.group_committed import Committed, Partition, coordinator_ready
from contextplane.cli.kafka_client import (
    ADMIN_TIMEOUT_S,
    CommandError,
    answer,
    exception_text,
    kafka_error_text,
)

# A source offset of (topic, partition) as the target's, or None while not copied yet.
Translate = Callable[[str, int, int], int | None]

# What the target's coordinator answers an admin commit while the group has members.
_ACTIVE_GROUP_ERRORS = ("UNKNOWN_MEMBER_ID", "REBALANCE_IN_PROGRESS", "ILLEGAL_GENERATION")


@dataclass
class GroupsPass:
    """One pass over the groups: per group, the offsets copied as {"topic:partition":
    offset}; and why a group had nothing copied, where the user should know."""

    copied: dict[str, dict[str, int]] = field(default_factory=dict)
    not_copied: dict[str, str] = field(default_factory=dict)
    sources: dict[str, dict[str, int]] = field(default_factory=dict)  # the source offsets


class GroupsSeen:
    """The offsets copied over all passes, and why a group had none copied in the last
    pass; each reason is told (`tell`) once, when it first appears."""

    def __init__(self, tell: Callable[[str], None]) -> None:
        self.copied: dict[str, dict[str, int]] = {}
        self.sources: dict[str, dict[str, int]] = {}
        self.not_copied: dict[str, str] = {}
        self._tell = tell

    def take(self, done: GroupsPass) -> None:
        for group, offsets in done.copied.items():
            self.copied.setdefault(group, {}).update(offsets)
            self.sources.setdefault(group, {}).update(done.sources.get(group, {}))
        for group, reason in done.not_copied.items():
            if self.not_copied.get(group) != reason:
                self._tell(reason)
        self.not_copied = done.not_copied


def source_groups(admin: Any, named: list[str] | None) -> list[str]:
    """The groups named, else every consumer group of the source."""
    if named:
        return named
    listed = answer(admin.list_consumer_groups(), "listing the source's consumer groups")
    return sorted(group.group_id for group in listed.valid)


def copy_offsets(
    source_config: dict[str, Any],
    target: Any,
    target_config: dict[str, Any],
    groups: list[str],
    mirrored: dict[tuple[str, int], int],
    named: bool = False,
    translate: Translate | None = None,
) -> GroupsPass:
    """Copy what `groups` committed on the mirrored partitions (`mirrored`: each one's
    position); `source_config` and `target_config` are the clusters' client settings,
    `target` the target's AdminClient. With `named` (the user listed the groups), a group
    without offsets on those partitions is reported too. `translate` maps a source offset
    to the target's (a copy mirror's offsets differ); without it the offset is kept, once
    mirrored past."""

    def on_source(source: Any) -> GroupsPass:
        return group_committed.connected(
            target_config,
            lambda on_target: _copy_pass(
                source, on_target, target, groups, mirrored, named, translate
            ),
        )

    return group_committed.connected(source_config, on_source)


def _copy_pass(
    source: Any,
    on_target: Any,
    target: Any,
    groups: list[str],
    mirrored: dict[tuple[str, int], int],
    named: bool,
    translate: Translate | None,
) -> GroupsPass:
    """`copy_offsets` with kafka-python admin clients of both clusters (`source`,
    `on_target`: their OffsetFetch) and the target's AdminClient (`target`: its commit)."""
    translate = translate or functools.partial(_kept, mirrored)
    result = GroupsPass()
    for group in groups:
        fetched = group_committed.committed(
            source, group, None, f"offsets of group {group} on the source"
        )
        ours = {
            key: found
            for key, found in sorted(fetched.items())
            if found.offset >= 0 and key in mirrored
        }
        if not ours:
            if named:
                result.not_copied[group] = (
                    f"group {group} has no offsets on the mirrored topics on the source"
                    if fetched
                    else f"group {group} is not found on the source (it has no committed offsets)"
                )
            continue
        there = group_committed.committed(
            on_target, group, list(ours), f"offsets of group {group} on the target"
        )
        translated = {key: translate(key[0], key[1], found.offset) for key, found in ours.items()}
        ready = [
            _offset(key, found, at)
            for key, found in ours.items()
            if (at := translated[key]) is not None and at > _offset_of(there, key)
        ]
        if not ready:
            continue
        committed = coordinator_ready(functools.partial(_commit, target, group, ready))
        if committed is None:
            result.not_copied[group] = (
                f"group {group} has members on the target; its offsets are copied once it is empty"
            )
            continue
        result.copied[group] = {f"{tp.topic}:{tp.partition}": tp.offset for tp in committed}
        result.sources[group] = {
            f"{topic}:{partition}": found.offset
            for (topic, partition), found in ours.items()
            if f"{topic}:{partition}" in result.copied[group]
        }
    return result


def _offset_of(fetched: dict[Partition, Committed], key: Partition) -> int:
    """The offset committed for `key`, -1 where none (nor an answer for it)."""
    return fetched[key].offset if key in fetched else -1


def _kept(
    mirrored: dict[tuple[str, int], int], topic: str, partition: int, offset: int
) -> int | None:
    """The offset itself, once the offset-keeping mirror has appended past it."""
    return offset if mirrored[(topic, partition)] >= offset else None


def _offset(key: Partition, fetched: Committed, at: int) -> Any:
    """The offset `at` on the target with the source's commit metadata, where it has any
    (confluent-kafka refuses None); no leader epoch (the module's docstring says why).
    The metadata is taken up to its first NUL: librdkafka commits a C string with its
    terminator, which it adds again here (and confluent-kafka refuses a NUL inside)."""
    from confluent_kafka import TopicPartition

    topic, partition = key
    metadata = (fetched.metadata or "").split("\0", 1)[0]
    if not metadata:
        return TopicPartition(topic, partition, at)
    return TopicPartition(topic, partition, at, metadata)


def _commit(target: Any, group: str, offsets: list[Any]) -> list[Any] | None:
    """Commit `offsets` for `group` on the target; None when the group has members there."""
    from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException

    what = f"committing group {group}'s offsets on the target"
    future = target.alter_consumer_group_offsets([ConsumerGroupTopicPartitions(group, offsets)])
    try:
        committed = future[group].result(timeout=ADMIN_TIMEOUT_S)
    except KafkaException as exc:
        if _active(exception_text(exc)):
            return None
        raise CommandError(f"{what}: {exception_text(exc)}") from None
    except concurrent.futures.TimeoutError:
        raise CommandError(f"{what}: no answer within {ADMIN_TIMEOUT_S:.0f} s") from None
    for tp in committed.topic_partitions:
        if tp.error is not None:
            if _active(kafka_error_text(tp.error)):
                return None
            raise CommandError(
                f"committing group {group}'s offset of {tp.topic}-{tp.partition} on the "
                f"target: {kafka_error_text(tp.error)}"
            )
    return list(committed.topic_partitions)


def _active(error_text: str) -> bool:
    return error_text.startswith(_ACTIVE_GROUP_ERRORS)
