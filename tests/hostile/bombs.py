"""Decompression bombs, built without ever holding their decompressed size in memory:
zeros (Kafka's reader fails at the first 'record'), and well-formed ones (one record
whose value is the zeros: only a bound on decompressed size stops them)."""

from __future__ import annotations

import functools
import zlib

import cramjam

from conformance import wire
from contextplane.protocol.decompress import GZIP, LZ4, SNAPPY, ZSTD, zstd_module
from tests.hostile.support import batch_around

MIB = 1 << 20
_PIECE = 64 * MIB


def record_head(value_size: int) -> bytes:
    """One record up to its value: `value_size` value bytes and a zero header count
    (one more zero byte) must follow."""
    fields = b"\x00" + wire._varint(0) + wire._varint(0) + wire._varint(-1)
    fields += wire._varint(value_size)
    return wire._varint(len(fields) + value_size + 1) + fields


@functools.cache
def _zstd_zeros_frame(size: int, head: bytes = b"") -> bytes:
    compressor = zstd_module().ZstdCompressor(level=1)
    out = [compressor.compress(head)]
    piece = bytes(_PIECE)
    for done in range(0, size, _PIECE):
        out.append(compressor.compress(piece[: min(_PIECE, size - done)]))
    out.append(compressor.flush())
    return b"".join(out)


@functools.cache
def _gzip_member(size: int, head: bytes = b"") -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    return compressor.compress(head + bytes(size - len(head))) + compressor.flush()


def _lz4_frame(size: int, head: bytes = b"") -> bytes:
    compressor = cramjam.lz4.Compressor(content_checksum=False, block_linked=False)
    compressor.compress(head)
    piece = bytes(_PIECE)
    for done in range(0, size, _PIECE):
        compressor.compress(piece[: min(_PIECE, size - done)])
    return bytes(compressor.finish())


def zeros(codec: int, size: int) -> bytes:
    """A batch claiming one record, whose payload is `size` zero bytes compressed."""
    if codec == ZSTD:  # frames of up to 256 MiB, one after another
        frame = _zstd_zeros_frame(256 * MIB)
        payload = frame * (size // (256 * MIB)) if size >= 256 * MIB else _zstd_zeros_frame(size)
    elif codec == GZIP:  # gzip members of 64 MiB
        payload = _gzip_member(_PIECE) * (size // _PIECE)
    elif codec == LZ4:
        payload = _lz4_frame(size)
    else:
        payload = wire._xerial_snappy(bytes(size))
    return batch_around(payload, 1, codec)


def one_huge_record(codec: int, size: int) -> bytes:
    """A batch of one well-formed record whose decompressed size is `size` bytes."""
    if codec == ZSTD:
        head = record_head(size - len(record_head(size)) - 1)
        payload = _zstd_zeros_frame(size - len(head), head)
    elif codec == GZIP:
        head = record_head(size - len(record_head(size)) - 1)
        assert size % _PIECE == 0
        payload = _gzip_member(_PIECE, head) + _gzip_member(_PIECE) * (size // _PIECE - 1)
    elif codec == LZ4:
        head = record_head(size - len(record_head(size)) - 1)
        payload = _lz4_frame(size - len(head), head)
    else:
        raise ValueError(codec)
    return batch_around(payload, 1, codec)


def snappy_block_declaring(size: int) -> bytes:
    """A raw snappy block whose preamble declares `size` bytes but holds a few."""
    return batch_around(_uvarint(size) + b"\x00" * 8, 1, SNAPPY)


def _uvarint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def many_headers(count: int) -> bytes:
    """A zstd batch of one record with `count` empty headers (key "", value null): a few
    KB on the wire, 2 bytes a header decompressed, far under the decompression bound,
    so only the cost of reading each header matters."""
    headers = wire._varint(count) + (wire._varint(0) + wire._varint(-1)) * count
    fields = b"\x00" + wire._varint(0) + wire._varint(0) + wire._varint(-1)
    fields += wire._varint(-1) + headers
    record = wire._varint(len(fields)) + fields
    return batch_around(bytes(cramjam.zstd.compress(record)), 1, ZSTD)


def keyless_records(count: int) -> bytes:
    """A zstd batch of `count` minimal records without a key (a record error each on a
    compacted topic): under 1 MB on the wire for a million."""
    records = []
    for index in range(count):
        fields = b"\x00" + wire._varint(0) + wire._varint(index) + wire._varint(-1)
        fields += wire._varint(-1) + wire._varint(0)
        records.append(wire._varint(len(fields)) + fields)
    return batch_around(bytes(cramjam.zstd.compress(b"".join(records))), count, ZSTD)
