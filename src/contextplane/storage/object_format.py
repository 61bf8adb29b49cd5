"""Layout of a multi-partition object (in the style of AutoMQ's stream set objects).

    [data: each stream's record batches, contiguous per stream]
    [index: msgspec-encoded list of IndexEntry]
    [footer: u64 index position, u32 index length, 8-byte magic]

The metadata store holds the same index, so readers range-GET a stream's bytes directly;
the footer makes an object self-describing for compaction and repair tools.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from dataclasses import dataclass

import msgspec

MAGIC = b"CTXPOBJ1"
_FOOTER = struct.Struct(">QI8s")


class IndexEntry(msgspec.Struct, array_like=True):
    stream_id: int
    base_offset: int
    end_offset: int  # exclusive
    position: int
    size: int
    max_timestamp: int


@dataclass(slots=True)
class StreamChunk:
    stream_id: int
    base_offset: int
    end_offset: int
    max_timestamp: int
    batches: Sequence[bytes | memoryview]  # copied whole (compaction passes whole ranges)


def index_bytes_max(streams: int) -> int:
    """An upper bound on the index and footer of an object with `streams` streams (a
    msgpack array header, then six integers of at most 9 bytes each per entry)."""
    return _FOOTER.size + 5 + streams * (1 + 6 * 9)


def build_object(chunks: list[StreamChunk]) -> tuple[list[bytes | memoryview], list[IndexEntry]]:
    """The object's bytes as parts (the batches themselves, then index and footer: never
    joined here, `ObjectStore.put` writes them), and its index."""
    parts: list[bytes | memoryview] = []
    index: list[IndexEntry] = []
    position = 0
    for chunk in chunks:
        size = sum(len(b) for b in chunk.batches)
        index.append(
            IndexEntry(
                chunk.stream_id,
                chunk.base_offset,
                chunk.end_offset,
                position,
                size,
                chunk.max_timestamp,
            )
        )
        parts.extend(chunk.batches)
        position += size
    encoded_index = msgspec.msgpack.encode(index)
    parts.append(encoded_index)
    parts.append(_FOOTER.pack(position, len(encoded_index), MAGIC))
    return parts, index


def parts_size(parts: Sequence[bytes | memoryview]) -> int:
    return sum(len(part) for part in parts)


def read_index(data: bytes) -> list[IndexEntry]:
    position, length, magic = _FOOTER.unpack_from(data, len(data) - _FOOTER.size)
    if magic != MAGIC:
        raise ValueError("not a contextplane object (bad footer magic)")
    return msgspec.msgpack.decode(data[position : position + length], type=list[IndexEntry])


def object_key(node_id: int, sequence: int) -> str:
    """A hashed prefix spreads keys over the store's key space, as AutoMQ does."""
    name = f"{node_id}-{sequence:016d}"
    prefix = hashlib.sha1(name.encode()).hexdigest()[:8]
    return f"objects/{prefix}/{name}.obj"
