"""The order the apply loop folds a batch in, the one a point-in-time read folds the
same records in (RFC 0006 §1, "Slice 2 as built")."""

from __future__ import annotations

import heapq
from typing import Any

from confluent_kafka import TIMESTAMP_NOT_AVAILABLE

from contextplane.services.context.merge import Origin


def record_origin(message: Any) -> tuple[Origin, int | None]:
    """A consumed record as an Origin (timestamp -1 when it has none) and its timestamp."""
    kind, timestamp = message.timestamp()
    timestamp_ms = None if kind == TIMESTAMP_NOT_AVAILABLE else int(timestamp)
    origin = Origin(
        message.topic(),
        message.partition(),
        message.offset(),
        -1 if timestamp_ms is None else timestamp_ms,
    )
    return origin, timestamp_ms


def _order_key(message: Any) -> tuple[int, str, int]:
    """The point-in-time read's order key (as_of.fold_in_order): (timestamp, topic,
    partition); a partition EOF event or a record without a timestamp sorts as -1."""
    timestamp = -1
    if message.error() is None:
        kind, at = message.timestamp()
        timestamp = -1 if kind == TIMESTAMP_NOT_AVAILABLE else int(at)
    return (timestamp, message.topic(), message.partition())


def canonical_order(messages: list[Any]) -> list[Any]:
    """A batch in the order an `as_of` read folds the same records: each partition's in
    offset order, partitions merged by their next record's (timestamp, topic, partition).
    Records that arrive in one batch then give the state `as_of` gives; a record that
    arrives in a later batch than one with a later timestamp still folds after it (the
    loop does not hold records back waiting for slower partitions, except right after the
    sources are positioned: `Applier._gather_first`)."""
    by_partition: dict[tuple[str, int], list[Any]] = {}
    for message in messages:
        by_partition.setdefault((message.topic(), message.partition()), []).append(message)
    if len(by_partition) < 2:
        return messages
    lanes = (by_partition[tp] for tp in sorted(by_partition))
    return list(heapq.merge(*lanes, key=_order_key))
