"""The mirror's progress, kept on the target in a compacted topic (`STATE_TOPIC`): one
record per source partition, keyed by topic and partition, whose value is the offset the
next fetch starts at. Read back whole when a mirror starts, so a mirror that was stopped
or killed resumes where its last acknowledged append ended (a batch sent again is
acknowledged by MirrorAppend without a second copy)."""

from __future__ import annotations

import json
from typing import Any

from contextplane.cli.kafka_client import (
    ADMIN_TIMEOUT_S,
    CommandError,
    answer,
    kafka_error_text,
)
from contextplane.clock import SystemClock
from contextplane.limits import INT_MAX, LONG_MAX

STATE_TOPIC = "__contextplane_mirror"
_READ_POLL_S = 0.5
KEYS_MAX = 100_000  # progress records kept in memory at start
# A progress record this command writes is at most ~20 KB (a copy mirror's offset map,
# `mirror_offset_map.RUNS_MAX`); a larger one was written by someone else and is no
# progress. What is kept at start is bounded in all, so a state topic filled with
# large records cannot exhaust memory.
RECORD_BYTES_MAX = 64 * 1024
KEPT_BYTES_MAX = 256 * 1024 * 1024


def ensure_topic(admin: Any, metadata: Any) -> None:
    """Create the state topic on the target unless it is there."""
    from confluent_kafka.admin import NewTopic

    if STATE_TOPIC in metadata.topics:
        return
    created = admin.create_topics(
        [NewTopic(STATE_TOPIC, 1, 1, config={"cleanup.policy": "compact"})]
    )
    try:
        answer(created[STATE_TOPIC], f"creating the mirror's state topic {STATE_TOPIC}")
    except CommandError as exc:
        if "TOPIC_ALREADY_EXISTS" not in str(exc):
            raise


def _key(topic: str, partition: int) -> bytes:
    return json.dumps([topic, partition]).encode()


def read(config: dict[str, Any]) -> dict[tuple[str, int], int]:
    """Every partition's stored position (the last record of each key wins)."""
    positions: dict[tuple[str, int], int] = {}
    for key, value in read_latest(config).items():
        _take(positions, key, value)
    return positions


def read_latest(config: dict[str, Any]) -> dict[bytes, bytes | None]:
    """The state topic's latest value of each key (read committed, librdkafka's default,
    so a copy mirror's aborted progress is not seen)."""
    from confluent_kafka import Consumer, KafkaError, TopicPartition

    consumer = Consumer(
        config
        | {"group.id": "contextplane-mirror-state", "enable.auto.commit": False}
        | {"enable.partition.eof": True}
    )
    latest: dict[bytes, bytes | None] = {}
    kept = 0  # bytes of the keys and values in `latest`
    try:
        low, high = consumer.get_watermark_offsets(
            TopicPartition(STATE_TOPIC, 0), timeout=ADMIN_TIMEOUT_S
        )
        if high <= low:
            return latest
        consumer.assign([TopicPartition(STATE_TOPIC, 0, low)])
        clock = SystemClock()
        deadline_ms = clock.monotonic_ms() + ADMIN_TIMEOUT_S * 1000
        offset = low - 1
        while offset < high - 1:
            if clock.monotonic_ms() >= deadline_ms:
                raise CommandError(f"reading {STATE_TOPIC}: not read to its end in time")
            message = consumer.poll(_READ_POLL_S)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    break
                raise CommandError(f"reading {STATE_TOPIC}: {kafka_error_text(error)}")
            offset = message.offset() or 0
            key, value = message.key() or b"", message.value()
            if len(key) + len(value or b"") > RECORD_BYTES_MAX:
                value = None  # not a record this command writes: no progress
            if key in latest:
                kept -= len(key) + len(latest[key] or b"")
            kept += len(key) + len(value or b"")
            latest[key] = value
            if len(latest) > KEYS_MAX:
                raise CommandError(f"reading {STATE_TOPIC}: more than {KEYS_MAX} keys")
            if kept > KEPT_BYTES_MAX:
                raise CommandError(
                    f"reading {STATE_TOPIC}: its latest records hold more than "
                    f"{KEPT_BYTES_MAX:,} bytes"
                )
    finally:
        consumer.close()
    return latest


def _take(positions: dict[tuple[str, int], int], key: bytes | None, value: bytes | None) -> None:
    """One progress record into `positions` (a record this command did not write is
    ignored: the topic is anyone's to write, and an infinite, nested or out-of-range
    number there is no position any Fetch could start at)."""
    try:
        topic, partition = json.loads(key or b"")
        position = int(json.loads(value or b"")["next"])
        partition = int(partition)
    except (TypeError, ValueError, KeyError, OverflowError, RecursionError):
        return
    if 0 <= partition <= INT_MAX and 0 <= position <= LONG_MAX:
        positions[(str(topic), partition)] = position


class StateWriter:
    def __init__(self, config: dict[str, Any]) -> None:
        from confluent_kafka import Producer

        self._producer = Producer(config | {"acks": "all", "linger.ms": 5})

    def save(self, positions: dict[tuple[str, int], int]) -> None:
        """Store `positions` and wait until the target has them."""
        for (topic, partition), offset in positions.items():
            self._producer.produce(
                STATE_TOPIC, key=_key(topic, partition), value=json.dumps({"next": offset})
            )
        if self._producer.flush(ADMIN_TIMEOUT_S):
            raise CommandError(f"{STATE_TOPIC}: progress not acknowledged within the timeout")
