"""Compression of record batch payloads, framed as Kafka's Java writers frame them, so a
batch the broker rewrites (the log cleaner) keeps its codec for every reader:

* gzip: one member (GZIPOutputStream);
* snappy: xerial framing (SnappyOutputStream): magic, version 1, compatible version 1,
  then blocks of at most 32 KiB, each a 4-byte length and a raw snappy block;
* lz4: one LZ4 frame as KafkaLZ4BlockOutputStream writes it: version 1, independent
  blocks of at most 64 KiB, no block or content checksum, no content size; a block that
  does not shrink is stored uncompressed (the high bit of its length);
* zstd: one frame.
"""

from __future__ import annotations

import struct
import zlib

import cramjam

from contextplane.protocol.decompress import (
    GZIP,
    LZ4,
    NONE,
    SNAPPY,
    ZSTD,
    xxh32,
    zstd_module,
)

_XERIAL_HEADER = b"\x82SNAPPY\x00" + struct.pack(">ii", 1, 1)
_XERIAL_BLOCK_BYTES = 32 * 1024
_LZ4_MAGIC = struct.pack("<I", 0x184D2204)
_LZ4_FLG = 0x60  # version 01, independent blocks
_LZ4_BD = 0x40  # 64 KiB blocks
_LZ4_BLOCK_BYTES = 64 * 1024
_LZ4_UNCOMPRESSED_BIT = 0x80000000


def _gzip(data: bytes) -> bytes:
    compressor = zlib.compressobj(6, zlib.DEFLATED, 31)
    return compressor.compress(data) + compressor.flush()


def _snappy(data: bytes) -> bytes:
    out = [_XERIAL_HEADER]
    for start in range(0, len(data), _XERIAL_BLOCK_BYTES):
        block = bytes(cramjam.snappy.compress_raw(data[start : start + _XERIAL_BLOCK_BYTES]))
        out += [struct.pack(">i", len(block)), block]
    return b"".join(out)


def _lz4(data: bytes) -> bytes:
    descriptor = bytes((_LZ4_FLG, _LZ4_BD))
    out = [_LZ4_MAGIC, descriptor, bytes(((xxh32(descriptor) >> 8) & 0xFF,))]
    for start in range(0, len(data), _LZ4_BLOCK_BYTES):
        chunk = data[start : start + _LZ4_BLOCK_BYTES]
        block = bytes(cramjam.lz4.compress_block(chunk, store_size=False))
        if len(block) >= len(chunk):
            out += [struct.pack("<I", len(chunk) | _LZ4_UNCOMPRESSED_BIT), chunk]
        else:
            out += [struct.pack("<I", len(block)), block]
    out.append(struct.pack("<I", 0))  # end mark
    return b"".join(out)


def _zstd(data: bytes) -> bytes:
    return zstd_module().compress(data)


_WRITERS = {GZIP: _gzip, SNAPPY: _snappy, LZ4: _lz4, ZSTD: _zstd}


def compress(codec: int, data: bytes) -> bytes:
    """`data` compressed with `codec` (NONE returns it as is)."""
    if codec == NONE:
        return data
    writer = _WRITERS.get(codec)
    if writer is None:
        raise ValueError(f"unknown compression codec {codec}")
    return writer(data)
