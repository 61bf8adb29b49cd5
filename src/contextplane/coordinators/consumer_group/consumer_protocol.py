"""The consumer embedded protocol: what a classic consumer puts in its JoinGroup metadata
(ConsumerProtocolSubscription) and what its SyncGroup carries back
(ConsumerProtocolAssignment), versions 0-3 (Kafka's ConsumerProtocol).

Rules of this file: the bytes come from clients, so every length is checked against what
is left before it is used, counts are bounded by the bytes left, and anything malformed
raises `MalformedProtocol` (Kafka's SchemaException). A version above 3 is read as 3, as
Kafka reads a newer client's bytes (its extra fields trail).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass

from contextplane.coordinators.consumer_group.assignors import TopicPartition

VERSION_MAX = 3


class MalformedProtocol(ValueError):
    """The embedded consumer protocol bytes cannot be read."""


@dataclass(frozen=True, slots=True)
class Subscription:
    version: int
    topics: tuple[str, ...]
    user_data: bytes | None = None
    owned: frozenset[TopicPartition] = frozenset()
    generation_id: int = -1
    rack_id: str | None = None


@dataclass(frozen=True, slots=True)
class Assignment:
    version: int
    partitions: frozenset[TopicPartition]
    user_data: bytes | None = None


class _Reader:
    def __init__(self, data: bytes) -> None:
        self._data = data
        self._at = 0

    def _take(self, size: int) -> bytes:
        if size < 0 or self._at + size > len(self._data):
            raise MalformedProtocol("the embedded consumer protocol is truncated")
        chunk = self._data[self._at : self._at + size]
        self._at += size
        return chunk

    def int16(self) -> int:
        return int(struct.unpack(">h", self._take(2))[0])

    def int32(self) -> int:
        return int(struct.unpack(">i", self._take(4))[0])

    def count(self, item_size_min: int) -> int:
        count = self.int32()
        if count < 0 or count * item_size_min > len(self._data) - self._at:
            raise MalformedProtocol(f"invalid array length {count}")
        return count

    def string(self) -> str:
        text = self.nullable_string()
        if text is None:
            raise MalformedProtocol("a non-nullable string is null")
        return text

    def nullable_string(self) -> str | None:
        length = self.int16()
        if length == -1:
            return None
        try:
            return self._take(length).decode()
        except UnicodeDecodeError:
            raise MalformedProtocol("a string is not UTF-8") from None

    def nullable_bytes(self) -> bytes | None:
        length = self.int32()
        return None if length == -1 else self._take(length)

    def topic_partitions(self) -> frozenset[TopicPartition]:
        partitions: set[TopicPartition] = set()
        for _ in range(self.count(6)):
            topic = self.string()
            partitions.update((topic, self.int32()) for _ in range(self.count(4)))
        return frozenset(partitions)


def _version(reader: _Reader) -> int:
    version = reader.int16()
    if version < 0:
        raise MalformedProtocol(f"unsupported version {version}")
    return min(version, VERSION_MAX)


def decode_subscription(data: bytes) -> Subscription:
    reader = _Reader(data)
    version = _version(reader)
    topics = tuple(reader.string() for _ in range(reader.count(2)))
    user_data = reader.nullable_bytes()
    owned = reader.topic_partitions() if version >= 1 else frozenset()
    generation_id = reader.int32() if version >= 2 else -1
    rack_id = reader.nullable_string() if version >= 3 else None
    return Subscription(version, topics, user_data, owned, generation_id, rack_id)


def decode_assignment(data: bytes) -> Assignment:
    reader = _Reader(data)
    version = _version(reader)
    partitions = reader.topic_partitions()
    return Assignment(version, partitions, reader.nullable_bytes())


def _string(text: str | None) -> bytes:
    if text is None:
        return struct.pack(">h", -1)
    raw = text.encode()
    return struct.pack(">h", len(raw)) + raw


def _nullable_bytes(data: bytes | None) -> bytes:
    if data is None:
        return struct.pack(">i", -1)
    return struct.pack(">i", len(data)) + data


def _topic_partitions(partitions: Iterable[TopicPartition]) -> bytes:
    by_topic: dict[str, list[int]] = {}
    for topic, partition in sorted(partitions):
        by_topic.setdefault(topic, []).append(partition)
    out = [struct.pack(">i", len(by_topic))]
    for topic, indexes in by_topic.items():
        out.append(_string(topic))
        out.append(struct.pack(f">i{len(indexes)}i", len(indexes), *indexes))
    return b"".join(out)


def encode_subscription(subscription: Subscription) -> bytes:
    version = subscription.version
    out = [struct.pack(">hi", version, len(subscription.topics))]
    out.extend(_string(topic) for topic in subscription.topics)
    out.append(_nullable_bytes(subscription.user_data))
    if version >= 1:
        out.append(_topic_partitions(subscription.owned))
    if version >= 2:
        out.append(struct.pack(">i", subscription.generation_id))
    if version >= 3:
        out.append(_string(subscription.rack_id))
    return b"".join(out)


def encode_assignment(
    partitions: Iterable[TopicPartition], version: int, user_data: bytes | None = None
) -> bytes:
    """A ConsumerProtocolAssignment at `version` (0-3: all share one layout)."""
    header = struct.pack(">h", min(max(version, 0), VERSION_MAX))
    return header + _topic_partitions(partitions) + _nullable_bytes(user_data)
