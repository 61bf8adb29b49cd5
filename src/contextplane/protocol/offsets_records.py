"""The records of `__consumer_offsets`, in Kafka's own key and value formats.

Kafka's group coordinator writes these records (group-coordinator's message JSON:
OffsetCommitKey/Value, GroupMetadataKey/Value); lag monitors and Kafka's own
OffsetsMessageFormatter read them. A key starts with a big-endian int16 record type (1:
offset commit, 2: group metadata), then the key's fields (non-flexible strings: int16
length and UTF-8). A value starts with its int16 version; the versions written here are
the ones Kafka 4.4 writes (read back from its log): OffsetCommitValue v4, flexible (compact
strings, the topic id as tagged field 0), and GroupMetadataValue v3, not flexible (int16
string lengths, int32 array and bytes lengths). A null value (tombstone) deletes the key.

Pure: bytes in, values out. `encode_batch` builds the uncompressed RecordBatch v2 a
coordinator append holds (producer id -1, as Kafka's coordinator writes).
"""

from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass

from contextplane.protocol.crc import crc32c

OFFSETS_TOPIC = "__consumer_offsets"
OFFSET_COMMIT_KEY_TYPE = 1
GROUP_METADATA_KEY_TYPE = 2
OFFSET_COMMIT_VALUE_VERSION = 4
GROUP_METADATA_VALUE_VERSION = 3


def java_string_hash(text: str) -> int:
    """Java's String.hashCode (UTF-16 code units, 32-bit signed overflow)."""
    h = 0
    data = text.encode("utf-16-be")
    for i in range(0, len(data), 2):
        h = (31 * h + ((data[i] << 8) | data[i + 1])) & 0xFFFFFFFF
    return h - (1 << 32) if h & 0x80000000 else h


def partition_for(group_id: str, partitions: int) -> int:
    """Kafka's partitionFor: Utils.abs(groupId.hashCode()) % partitions."""
    return (java_string_hash(group_id) & 0x7FFFFFFF) % partitions


# -- primitive writers --------------------------------------------------------------------


def _string(text: str) -> bytes:
    data = text.encode()
    return struct.pack(">h", len(data)) + data


def uvarint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _varint(value: int) -> bytes:
    return uvarint(((value << 1) ^ (value >> 63)) & 0xFFFFFFFFFFFFFFFF)


def _compact_string(text: str | None) -> bytes:
    if text is None:
        return b"\x00"
    data = text.encode()
    return uvarint(len(data) + 1) + data


def _nullable_string(text: str | None) -> bytes:
    return b"\xff\xff" if text is None else _string(text)


def _bytes(data: bytes) -> bytes:
    return struct.pack(">i", len(data)) + data


# -- keys and values ----------------------------------------------------------------------


def offset_commit_key(group_id: str, topic: str, partition: int) -> bytes:
    return (
        struct.pack(">h", OFFSET_COMMIT_KEY_TYPE)
        + _string(group_id)
        + _string(topic)
        + struct.pack(">i", partition)
    )


_VALUE_HEAD = struct.Struct(">hqi")
_TIMESTAMP = struct.Struct(">q")
_EMPTY_COMPACT_STRING = _compact_string("")


def offset_commit_value(
    offset: int, leader_epoch: int, metadata: str, commit_timestamp_ms: int, topic_id: bytes | None
) -> bytes:
    tagged = b"\x00"
    if topic_id is not None and topic_id != bytes(16):
        tagged = b"\x01\x00\x10" + topic_id  # one tagged field: tag 0, 16 bytes, topicId
    return b"".join(
        (
            _VALUE_HEAD.pack(OFFSET_COMMIT_VALUE_VERSION, offset, leader_epoch),
            _compact_string(metadata) if metadata else _EMPTY_COMPACT_STRING,
            _TIMESTAMP.pack(commit_timestamp_ms),
            tagged,
        )
    )


def group_metadata_key(group_id: str) -> bytes:
    return struct.pack(">h", GROUP_METADATA_KEY_TYPE) + _string(group_id)


@dataclass(slots=True)
class MemberMetadata:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    rebalance_timeout_ms: int
    session_timeout_ms: int
    subscription: bytes
    assignment: bytes


@dataclass(slots=True)
class GroupMetadata:
    protocol_type: str
    generation: int
    protocol: str | None
    leader: str | None
    current_state_timestamp_ms: int
    members: list[MemberMetadata]


def group_metadata_value(group: GroupMetadata) -> bytes:
    out = bytearray(struct.pack(">h", GROUP_METADATA_VALUE_VERSION))
    out += _string(group.protocol_type)
    out += struct.pack(">i", group.generation)
    out += _nullable_string(group.protocol)
    out += _nullable_string(group.leader)
    out += struct.pack(">q", group.current_state_timestamp_ms)
    out += struct.pack(">i", len(group.members))
    for m in group.members:
        out += _string(m.member_id)
        out += _nullable_string(m.group_instance_id)
        out += _string(m.client_id)
        out += _string(m.client_host)
        out += struct.pack(">ii", m.rebalance_timeout_ms, m.session_timeout_ms)
        out += _bytes(m.subscription)
        out += _bytes(m.assignment)
    return bytes(out)


# -- decoding (for readers and tests) -----------------------------------------------------


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, size: int) -> bytes:
        if size < 0 or self.pos + size > len(self.data):
            raise ValueError("truncated offsets-topic record")
        chunk = self.data[self.pos : self.pos + size]
        self.pos += size
        return chunk

    def unpack(self, fmt: str) -> tuple[int, ...]:
        s = struct.Struct(fmt)
        return s.unpack(self.take(s.size))

    def string(self) -> str:
        text = self.nullable_string()
        if text is None:
            raise ValueError("null where a string is required")
        return text

    def nullable_string(self) -> str | None:
        (size,) = self.unpack(">h")
        return None if size == -1 else self.take(size).decode()

    def bytes_(self) -> bytes:
        (size,) = self.unpack(">i")
        return self.take(size)

    def uvarint(self) -> int:
        shift = value = 0
        while True:
            (byte,) = self.take(1)
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7
            if shift > 63:
                raise ValueError("varint too long")

    def compact_string(self) -> str | None:
        size = self.uvarint()
        return None if size == 0 else self.take(size - 1).decode()

    def tagged(self) -> dict[int, bytes]:
        fields = {}
        for _ in range(self.uvarint()):
            tag = self.uvarint()
            fields[tag] = self.take(self.uvarint())
        return fields


def decode_key(data: bytes) -> tuple[int, tuple[str | int, ...]]:
    """(record type, fields): (1, (group, topic, partition)) or (2, (group,))."""
    r = _Reader(data)
    (kind,) = r.unpack(">h")
    if kind in (0, OFFSET_COMMIT_KEY_TYPE):
        group, topic = r.string(), r.string()
        (partition,) = r.unpack(">i")
        return kind, (group, topic, partition)
    if kind == GROUP_METADATA_KEY_TYPE:
        return kind, (r.string(),)
    raise ValueError(f"unknown offsets-topic key type {kind}")


@dataclass(slots=True)
class OffsetCommitValue:
    version: int
    offset: int
    leader_epoch: int
    metadata: str
    commit_timestamp_ms: int
    topic_id: uuid.UUID | None


def decode_offset_commit_value(data: bytes) -> OffsetCommitValue:
    r = _Reader(data)
    (version,) = r.unpack(">h")
    if version != OFFSET_COMMIT_VALUE_VERSION:
        raise ValueError(f"OffsetCommitValue v{version} is not decoded here")
    offset, leader_epoch = r.unpack(">qi")
    metadata = r.compact_string() or ""
    (timestamp,) = r.unpack(">q")
    topic_id = r.tagged().get(0)
    return OffsetCommitValue(
        version,
        offset,
        leader_epoch,
        metadata,
        timestamp,
        None if topic_id is None else uuid.UUID(bytes=topic_id),
    )


def decode_group_metadata_value(data: bytes) -> GroupMetadata:
    r = _Reader(data)
    (version,) = r.unpack(">h")
    if version != GROUP_METADATA_VALUE_VERSION:
        raise ValueError(f"GroupMetadataValue v{version} is not decoded here")
    protocol_type = r.string()
    (generation,) = r.unpack(">i")
    protocol = r.nullable_string()
    leader = r.nullable_string()
    (timestamp,) = r.unpack(">q")
    members = []
    (count,) = r.unpack(">i")
    for _ in range(count):
        member_id = r.string()
        instance_id = r.nullable_string()
        client_id = r.string()
        client_host = r.string()
        rebalance_timeout, session_timeout = r.unpack(">ii")
        subscription = r.bytes_()
        assignment = r.bytes_()
        members.append(
            MemberMetadata(
                member_id,
                instance_id,
                client_id,
                client_host,
                rebalance_timeout,
                session_timeout,
                subscription,
                assignment,
            )
        )
    return GroupMetadata(protocol_type, generation, protocol, leader, timestamp, members)


# -- the batch ----------------------------------------------------------------------------


def _small_varint(value: int) -> bytes:
    """A zigzag varint, from a table for the small values a batch mostly holds."""
    if -1 <= value < _SMALL_VARINTS_END:
        return (_SMALL_VARINTS or _fill_small_varints())[value + 1]
    return _varint(value)


_SMALL_VARINTS_END = 1 << 14
# Filled by the first batch encoded (~4 ms, not every start's).
_SMALL_VARINTS: list[bytes] = []


def _fill_small_varints() -> list[bytes]:
    # Written out (zigzag of v >= 0 is 2v, of -1 is 1; below 2**15 a varint is one to
    # three bytes): calling _varint for each of the 16,385 values took ~15 ms.
    _SMALL_VARINTS[:] = [b"\x01"] + [
        bytes((z,))
        if z < 0x80
        else bytes(((z & 0x7F) | 0x80, z >> 7))
        if z < 0x4000
        else bytes(((z & 0x7F) | 0x80, ((z >> 7) & 0x7F) | 0x80, z >> 14))
        for z in range(0, 2 * _SMALL_VARINTS_END, 2)
    ]
    return _SMALL_VARINTS


_NULL = _varint(-1)
# A record's attributes and timestamp delta (every record has the batch's timestamp).
_RECORD_PREFIX = b"\x00" + _varint(0)
_NO_HEADERS = _varint(0)


def encode_batch(
    records: list[tuple[bytes, bytes | None]],
    timestamp_ms: int,
    attributes: int = 0,
    producer_id: int = -1,
    producer_epoch: int = -1,
) -> bytes:
    """One uncompressed RecordBatch v2 of (key, value) records, base offset 0, no base
    sequence, every record at `timestamp_ms` (the appender stamps the base offset);
    producer id -1 unless given (a transaction marker's)."""
    if not records:
        raise ValueError("a batch holds at least one record")
    parts: list[bytes] = []
    append = parts.append
    for delta, (key, value) in enumerate(records):
        one = b"".join(
            (
                _RECORD_PREFIX,
                _small_varint(delta),
                _small_varint(len(key)),
                key,
                _NULL if value is None else _small_varint(len(value)) + value,
                _NO_HEADERS,
            )
        )
        append(_small_varint(len(one)))
        append(one)
    count = len(records)
    after_crc = struct.pack(
        ">hiqqqhii",
        attributes,
        count - 1,
        timestamp_ms,
        timestamp_ms,
        producer_id,
        producer_epoch,
        -1,
        count,
    ) + b"".join(parts)
    length = 4 + 1 + 4 + len(after_crc)
    return struct.pack(">qiibI", 0, length, -1, 2, crc32c(after_crc)) + after_crc
