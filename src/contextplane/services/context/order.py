"""The order the apply loop folds a batch in, the one a point-in-time read folds the
same records in (RFC 0006 §1, "Slice 2 as built")."""

from __future__ import annotations

import heapq
import threading
from typing import Any

from confluent_kafka import TIMESTAMP_NOT_AVAILABLE

from contextplane.clock import SystemClock
from contextplane.services.context.merge import Origin

_CLOCK = SystemClock()

# Records taken from the consumer per transaction: many records of one entity in one
# batch become one changelog record (a batch of 500 applied ~1,500 records/s, 5,000 ~5,000,
# bench/context_service.py with 1,000 entities).
READ_BATCH_MAX = 5000
# After the sources are (re)positioned, the first batch waits up to this long after its
# first record for every other partition's first record or end (`gather`).
GATHER_WAIT_S = 1.0


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
    sources are positioned: `gather`)."""
    by_partition: dict[tuple[str, int], list[Any]] = {}
    for message in messages:
        by_partition.setdefault((message.topic(), message.partition()), []).append(message)
    if len(by_partition) < 2:
        return messages
    lanes = (by_partition[tp] for tp in sorted(by_partition))
    return list(heapq.merge(*lanes, key=_order_key))


def gather(
    consumer: Any,
    messages: list[Any],
    unheard: set[tuple[str, int]],
    stopping: threading.Event,
) -> list[Any]:
    """More of the first batch after the sources were (re)positioned (`unheard`: the
    partitions positioned, emptied here): until every one delivered a record or its end,
    GATHER_WAIT_S passed, or the batch holds READ_BATCH_MAX. The client starts each
    partition's fetch at its own moment (a ListOffsets each), so without waiting the
    records already in place at start-up could arrive in split batches and fold in
    arrival order rather than as `as_of` folds them (RFC 0006 §1)."""
    if not unheard:
        return []
    unheard.difference_update((m.topic(), m.partition()) for m in messages)
    more: list[Any] = []
    until = _CLOCK.monotonic_ms() + GATHER_WAIT_S * 1000
    while unheard and len(messages) + len(more) < READ_BATCH_MAX:
        if stopping.is_set() or _CLOCK.monotonic_ms() >= until:
            break
        got = consumer.consume(READ_BATCH_MAX - len(messages) - len(more), 0.05)
        unheard.difference_update((m.topic(), m.partition()) for m in got)
        more += got
    unheard.clear()
    return more
