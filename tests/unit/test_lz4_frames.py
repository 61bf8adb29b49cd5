"""LZ4 frames as Kafka clients send them: the per-thread block buffer and the cached
descriptor checksum must not change what is accepted or what comes out."""

from __future__ import annotations

import struct

import cramjam
import pytest

from contextplane.protocol.decompress import (
    DecompressedTooLarge,
    DecompressionError,
    _lz4,
    xxh32,
)

_DESCRIPTOR_64K = bytes([0x60, 0x40])  # version 1, independent blocks; 64 KiB blocks


def frame(
    *blocks: bytes, descriptor: bytes = _DESCRIPTOR_64K, checksum: int | None = None
) -> bytes:
    check = (xxh32(descriptor) >> 8) & 0xFF if checksum is None else checksum
    out = [struct.pack("<I", 0x184D2204), descriptor, bytes([check])]
    for data in blocks:
        block = bytes(cramjam.lz4.compress_block(data, store_size=False))
        out += [struct.pack("<I", len(block)), block]
    out.append(b"\0\0\0\0")
    return b"".join(out)


def read(payload: bytes, limit: int = 1 << 20) -> bytes:
    return b"".join(_lz4(memoryview(payload), limit, 1 << 16))


def test_interleaved_frames_on_one_thread_each_read_their_own_bytes() -> None:
    # Two frames read a block at a time in turn share the thread's buffer.
    first = [bytes([n]) * 40_000 for n in range(1, 4)]
    second = [bytes([n]) * 30_000 for n in range(10, 13)]
    readers = [_lz4(memoryview(frame(*first)), 1 << 20, 1 << 20)]
    readers.append(_lz4(memoryview(frame(*second)), 1 << 20, 1 << 20))
    got: list[list[bytes]] = [[], []]
    for _ in range(3):
        for number, reader in enumerate(readers):
            got[number].append(next(reader))
    assert got == [first, second]


def test_a_block_larger_than_the_descriptor_allows_is_refused() -> None:
    # 100 KB out of a block declared at most 64 KiB: the shared buffer is larger, the
    # room given to the decompressor is not.
    with pytest.raises((DecompressionError, cramjam.DecompressionError)):
        read(frame(b"x" * 100_000))


def test_the_limit_still_bounds_the_output() -> None:
    with pytest.raises(DecompressedTooLarge):
        read(frame(b"y" * 50_000), limit=10_000)


def test_a_wrong_descriptor_checksum_is_refused_after_a_right_one() -> None:
    assert read(frame(b"z" * 1_000)) == b"z" * 1_000
    good = (xxh32(_DESCRIPTOR_64K) >> 8) & 0xFF
    with pytest.raises(DecompressionError, match="checksum"):
        read(frame(b"z" * 1_000, checksum=good ^ 1))
