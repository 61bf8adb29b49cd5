"""Reading a changelog partition into the local store (RFC 0006 §1): at the start of the
single instance, and for each partition a partitioned instance is assigned."""

from __future__ import annotations

import logging
from typing import Any

from confluent_kafka import Consumer, KafkaError, TopicPartition

from contextplane.clock import SystemClock
from contextplane.services.context import changelog
from contextplane.services.context.freshness import Position
from contextplane.services.context.freshness import TopicPartition as TP
from contextplane.services.context.store import EntityKey, LocalStore

log = logging.getLogger("contextplane.context")
_CLOCK = SystemClock()

# Records taken from the changelog per SQLite transaction.
RESTORE_BATCH_MAX = 5000


class RestoreError(Exception):
    """The changelog could not be read to its end."""


def restore(
    common: dict[str, Any],
    name: str,
    topic: str,
    partition: int,
    store: LocalStore,
    wait_s: float,
) -> int:
    """Read `topic[partition]` (committed records only) from where the store last read
    it to its end; the entity changes read. Entity values are whole states: reading one
    again is harmless. A transaction another instance left open holds the end back until
    it is settled: the read waits up to `wait_s` for a record."""
    reader = Consumer(
        {
            **common,
            "group.id": f"{name}-restore",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
        }
    )
    try:
        low, high = reader.get_watermark_offsets(TopicPartition(topic, partition), timeout=wait_s)
        start = max(store.changelog_position(partition), low)
        if start >= high:
            return 0
        reader.assign([TopicPartition(topic, partition, start)])
        restored = 0
        at = start
        while at < high:
            deadline = _CLOCK.monotonic_ms() / 1000 + wait_s
            first = None
            while first is None and _CLOCK.monotonic_ms() / 1000 < deadline:
                # consume() would wait for a whole batch (or its timeout) even at the
                # end: the first record is polled, then what is already fetched taken.
                first = reader.poll(min(1.0, max(0.0, deadline - _CLOCK.monotonic_ms() / 1000)))
            if first is None:
                raise RestoreError(f"reading {topic}[{partition}] stopped at {at} of {high}")
            messages = [first, *reader.consume(RESTORE_BATCH_MAX - 1, timeout=0)]
            entities: dict[EntityKey, bytes | None] = {}
            entity_offsets: dict[EntityKey, int] = {}
            positions: dict[TP, Position] = {}
            for message in messages:
                error = message.error()
                offset = message.offset()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF and offset is not None:
                        at = max(at, offset)
                        continue
                    raise RestoreError(f"reading {topic}[{partition}]: {error.str()}")
                assert offset is not None, "a record has an offset"
                at = offset + 1
                record = changelog.read_record(message.key(), message.value())
                if isinstance(record, changelog.EntityRecord):
                    entities[record.key] = record.value
                    entity_offsets[record.key] = offset
                elif isinstance(record, changelog.PositionRecord):
                    positions[record.partition] = record.position
            store.commit(
                entities,
                positions,
                None,
                entity_offsets,
                dict.fromkeys(entities, partition),
                {partition: at},
            )
            restored += len(entities)
        log.info(
            "restored %d entity changes from %s[%d] offsets %d to %d",
            restored,
            topic,
            partition,
            start,
            at,
        )
        return restored
    finally:
        reader.close()
