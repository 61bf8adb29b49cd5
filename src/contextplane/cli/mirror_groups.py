"""Consumer group offsets copied from the source to the target: each group's committed
offsets on the mirrored topics, read with OffsetFetch on the source and written with
OffsetCommit on the target (confluent-kafka's admin calls), with their commit metadata;
what the target has committed is read by a consumer of the group (`group_committed.py`
says why not by the admin client).
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
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from contextplane.cli import group_committed
from contextplane.cli.kafka_client import (
    ADMIN_TIMEOUT_S,
    CommandError,
    answer,
    exception_text,
    kafka_error_text,
)
from contextplane.clock import SystemClock

T = TypeVar("T")

# A source offset of (topic, partition) as the target's, or None while not copied yet.
Translate = Callable[[str, int, int], int | None]

# What a coordinator answers while it is not ready: asked again.
_COORDINATOR_NOT_READY = (
    "COORDINATOR_LOAD_IN_PROGRESS",
    "COORDINATOR_NOT_AVAILABLE",
    "NOT_COORDINATOR",
)
_COORDINATOR_RETRY_S = 0.5

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
    source: Any,
    target: Any,
    target_config: dict[str, Any],
    groups: list[str],
    mirrored: dict[tuple[str, int], int],
    named: bool = False,
    translate: Translate | None = None,
) -> GroupsPass:
    """Copy what `groups` committed on the mirrored partitions (`mirrored`: each one's
    position); `target_config` is the target's client configuration. With `named` (the
    user listed the groups), a group without offsets on those partitions is reported too.
    `translate` maps a source offset to the target's (a copy mirror's offsets differ);
    without it the offset is kept, once mirrored past."""
    from confluent_kafka import ConsumerGroupTopicPartitions

    translate = translate or functools.partial(_kept, mirrored)

    result = GroupsPass()
    for group in groups:
        request = ConsumerGroupTopicPartitions(group)
        fetched = answer(
            source.list_consumer_group_offsets([request])[group],
            f"offsets of group {group} on the source",
        )
        ours = [
            tp
            for tp in fetched.topic_partitions
            if tp.offset >= 0 and (tp.topic, tp.partition) in mirrored
        ]
        if not ours:
            if named:
                result.not_copied[group] = (
                    f"group {group} has no offsets on the mirrored topics on the source"
                    if fetched.topic_partitions
                    else f"group {group} is not found on the source (it has no committed offsets)"
                )
            continue
        on_target = _coordinator_ready(functools.partial(_committed, target_config, group, ours))
        translated = {
            (tp.topic, tp.partition): translate(tp.topic, tp.partition, tp.offset) for tp in ours
        }
        ready = [
            _offset(tp, at)
            for tp in ours
            if (at := translated[(tp.topic, tp.partition)]) is not None
            and at > on_target.get((tp.topic, tp.partition), -1)
        ]
        if not ready:
            continue
        committed = _coordinator_ready(functools.partial(_commit, target, group, ready))
        if committed is None:
            result.not_copied[group] = (
                f"group {group} has members on the target; its offsets are copied once it is empty"
            )
            continue
        result.copied[group] = {f"{tp.topic}:{tp.partition}": tp.offset for tp in committed}
        result.sources[group] = {
            f"{tp.topic}:{tp.partition}": tp.offset
            for tp in ours
            if f"{tp.topic}:{tp.partition}" in result.copied[group]
        }
    return result


def _kept(
    mirrored: dict[tuple[str, int], int], topic: str, partition: int, offset: int
) -> int | None:
    """The offset itself, once the offset-keeping mirror has appended past it."""
    return offset if mirrored[(topic, partition)] >= offset else None


def _offset(fetched: Any, at: int) -> Any:
    """The offset `at` on the target with the source's commit metadata, where it has any
    (confluent-kafka refuses None); no leader epoch (the module's docstring says why)."""
    from confluent_kafka import TopicPartition

    if fetched.metadata is None:
        return TopicPartition(fetched.topic, fetched.partition, at)
    return TopicPartition(fetched.topic, fetched.partition, at, fetched.metadata)


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


def _coordinator_ready(call: Callable[[], T]) -> T:
    """`call`, asked again while the target's group coordinator is loading or moving
    (a cluster just started answers COORDINATOR_LOAD_IN_PROGRESS for a while), for at
    most ADMIN_TIMEOUT_S."""
    clock = SystemClock()
    deadline_ms = clock.monotonic_ms() + ADMIN_TIMEOUT_S * 1000
    while True:
        try:
            return call()
        except CommandError as exc:
            retriable = any(f": {name}" in str(exc) for name in _COORDINATOR_NOT_READY)
            if not retriable or clock.monotonic_ms() >= deadline_ms:
                raise
        time.sleep(_COORDINATOR_RETRY_S)


def _active(error_text: str) -> bool:
    return error_text.startswith(_ACTIVE_GROUP_ERRORS)


def _committed(
    target_config: dict[str, Any], group: str, partitions: list[Any]
) -> dict[tuple[str, int], int]:
    """What `group` has committed on the target for `partitions` (-1 where nothing)."""
    asked = [(tp.topic, tp.partition) for tp in partitions]
    fetched = group_committed.committed(
        target_config, group, asked, f"offsets of group {group} on the target"
    )
    return {(tp.topic, tp.partition): tp.offset for tp in fetched}
