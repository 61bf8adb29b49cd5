"""A lag monitor's view of `__consumer_offsets`: a plain consumer that reads every
partition from the earliest offset to the high watermark and decodes the records with
its own small decoder (as Burrow or kafka-lag-exporter do), independent of the broker's
encoder."""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

TOPIC = "__consumer_offsets"


@dataclass(frozen=True)
class Committed:
    offset: int
    leader_epoch: int
    metadata: str
    commit_ms: int


def _string(data: bytes, pos: int) -> tuple[str, int]:
    (size,) = struct.unpack_from(">h", data, pos)
    return data[pos + 2 : pos + 2 + size].decode(), pos + 2 + size


def decode_key(key: bytes) -> tuple[int, tuple[object, ...]]:
    (kind,) = struct.unpack_from(">h", key, 0)
    group, pos = _string(key, 2)
    if kind == 2:
        return kind, (group,)
    topic, pos = _string(key, pos)
    (partition,) = struct.unpack_from(">i", key, pos)
    return kind, (group, topic, partition)


def decode_commit(value: bytes) -> Committed:
    """OffsetCommitValue v4: offset, leader epoch, compact metadata, commit time."""
    version, offset, epoch = struct.unpack_from(">hqi", value, 0)
    assert version == 4, version
    size = value[14]  # metadata up to 126 bytes: one varint byte
    assert size < 0x80
    metadata = value[15 : 15 + size - 1].decode()
    (commit_ms,) = struct.unpack_from(">q", value, 15 + size - 1)
    return Committed(offset, epoch, metadata, commit_ms)


def read_all(bootstrap: str, timeout_s: float = 30.0) -> list[tuple[bytes, bytes | None]]:
    """Every record of the topic, partition by partition, in offset order."""
    by_partition = read_by_partition(bootstrap, timeout_s)
    return [r for p in sorted(by_partition) for r in by_partition[p]]


def read_by_partition(
    bootstrap: str, timeout_s: float = 30.0
) -> dict[int, list[tuple[bytes, bytes | None]]]:
    """The records of each non-empty partition, from its earliest offset, in order."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "lag-monitor-reader",  # never committed: assign(), not subscribe()
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "fetch.wait.max.ms": 10,  # the end reported at once, not after a 500-ms empty fetch
        }
    )
    try:
        metadata = consumer.list_topics(TOPIC, timeout=10).topics[TOPIC]
        partitions = sorted(metadata.partitions)
        ends = {
            p: consumer.get_watermark_offsets(TopicPartition(TOPIC, p), 10)[1] for p in partitions
        }
        starts = {
            p: consumer.get_watermark_offsets(TopicPartition(TOPIC, p), 10)[0] for p in partitions
        }
        wanted = {p for p in partitions if ends[p] > starts[p]}
        consumer.assign([TopicPartition(TOPIC, p, OFFSET_BEGINNING) for p in sorted(wanted)])
        records: dict[int, list[tuple[bytes, bytes | None]]] = {p: [] for p in wanted}
        done: set[int] = set()
        deadline = time.monotonic() + timeout_s
        while done != wanted:
            assert time.monotonic() < deadline, f"read {done} of {wanted}"
            message = consumer.poll(0.5)
            if message is None:
                continue
            if message.error() is not None:
                if message.partition() in wanted and message.offset() >= ends[message.partition()]:
                    done.add(message.partition())
                continue
            p = message.partition()
            if message.offset() < ends[p]:
                records[p].append((message.key(), message.value()))
            if message.offset() + 1 >= ends[p]:
                done.add(p)
        return records
    finally:
        consumer.close()


def latest_offsets(
    records: list[tuple[bytes, bytes | None]],
) -> dict[tuple[str, str, int], Committed]:
    """The live committed offsets: the newest record of each offset key (a null value
    deletes it)."""
    live: dict[tuple[str, str, int], Committed] = {}
    for key, value in records:
        kind, fields = decode_key(key)
        if kind != 1:
            continue
        group, topic, partition = fields
        assert isinstance(group, str) and isinstance(topic, str) and isinstance(partition, int)
        if value is None:
            live.pop((group, topic, partition), None)
        else:
            live[(group, topic, partition)] = decode_commit(value)
    return live
