"""`as_of` by timestamp: a time T resolved to the offset vector an `as_of` read answers
for, with Kafka's ListOffsets-by-timestamp (`offsets_for_times`) semantics.

Each source partition's bound is its first offset stamped after T (`offsets_for_times`
at T + 1); a partition with no such record below its end (the last stable offset, asked
first: a record stamped after T that lands meanwhile stays out) is bounded by that end.
The state as of T is then the state as of that vector: each partition's longest prefix
of records stamped ≤ T. A bound at a log start past 0 cannot say where T fell among the
records retention deleted: refused (410).
"""

from __future__ import annotations

from collections.abc import Callable

from confluent_kafka import Consumer, KafkaException, TopicPartition

from contextplane.services.context import errors
from contextplane.services.context.freshness import TopicPartition as TP


def check_timestamp(timestamp_ms: int, now_ms: int) -> None:
    """An int64 ≥ 0 (400 otherwise) that has passed (409: records stamped up to T may
    still arrive, so no state as of T exists yet). T + 1, what ListOffsets is asked,
    is then an int64 too."""
    if not 0 <= timestamp_ms < 2**63:
        raise errors.bad_as_of(f"as_of timestamp_ms must be 0 to 2^63-1, got {timestamp_ms}")
    if timestamp_ms >= now_ms:
        raise errors.as_of_time_ahead(timestamp_ms, now_ms)


def bounds_at(starts: dict[TP, int], ends: dict[TP, int], after: dict[TP, int]) -> dict[TP, int]:
    """The vector for T from each partition's log start, end and first offset stamped
    after T (`after`, -1 when the log holds none). An offset at or past the end (the
    lookup may name a record not yet decided) counts as none: the end bounds it."""
    ancient = {
        tp: starts[tp]
        for tp, offset in after.items()
        if 0 < offset <= starts[tp] and offset < ends[tp]
    }
    if ancient:
        raise errors.as_of_time_deleted(ancient)
    return {
        tp: offset if 0 <= offset < ends[tp] else ends[tp] for tp, offset in sorted(after.items())
    }


def resolve(
    consumer: Consumer,
    ends: dict[TP, tuple[int, int]],
    timestamp_ms: int,
    left_s: Callable[[], float],
) -> tuple[dict[TP, int], dict[TP, int]]:
    """The vector for T over the partitions of `ends` (each one's log start and end,
    asked before) and each one's log start: one `offsets_for_times` at T + 1 for them
    all (a ListOffsets per partition leader) from a `read_committed` consumer, within
    what `left_s` says is left of the read's time bound."""
    asked = [TopicPartition(topic, partition, timestamp_ms + 1) for topic, partition in ends]
    after: dict[TP, int] = {}
    for answer in consumer.offsets_for_times(asked, timeout=left_s()):
        if answer.error is not None:
            raise KafkaException(answer.error)
        after[(answer.topic, answer.partition)] = answer.offset
    starts = {tp: start for tp, (start, _) in ends.items()}
    return bounds_at(starts, {tp: end for tp, (_, end) in ends.items()}, after), starts
