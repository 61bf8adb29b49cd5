"""Bounded, streaming decompression of a record batch's payload, for every Kafka codec.

`decompressed_chunks` yields the decompressed bytes in pieces of at most `chunk_bytes`
and raises `DecompressedTooLarge` as soon as the output would pass `limit`: a 30 KB
zstd payload that expands to gigabytes costs at most `limit` bytes of output (and one
codec block of working memory) before it is refused. Nothing is allocated from a size
the payload declares before that size is checked against the limit.

The formats are those Kafka's own readers accept (clients' `compress` package):

* gzip: RFC 1952 members, one after another; bytes after the last member that do not
  start another member are ignored, as `java.util.zip.GZIPInputStream` ignores them.
* snappy: xerial framing (magic, version, then length-prefixed raw blocks) as the Java
  client writes it, or one raw snappy block as librdkafka may send; each raw block's
  uncompressed length (its varint preamble) is checked before it is decompressed.
* lz4: the LZ4 frame format with independent blocks, as `Lz4BlockInputStream` reads it
  (header checksum verified; block and content checksums are not: the batch CRC32C
  already covers the payload). Bytes after the end mark are ignored, as Kafka does.
* zstd: one or more frames (no bytes at all: an empty stream, as zstd-jni reads it);
  the decoder's window is capped (`window_log_max`).
"""

from __future__ import annotations

import functools
import struct
import threading
import zlib
from collections.abc import Iterator
from types import ModuleType

import cramjam


@functools.cache
def zstd_module() -> ModuleType:
    """The zstd module, imported on the first zstd batch (~30 ms a start otherwise)."""
    try:  # Python 3.14+: the standard library's zstd module
        from compression import zstd  # type: ignore[import-not-found]
    except ImportError:  # earlier Pythons: its backport, the same API
        from backports import zstd  # type: ignore[no-redef]
    return zstd


# Output granularity: the validator walks records one chunk at a time (a record that
# straddles two chunks costs a little more).
CHUNK_BYTES = 512 * 1024

NONE, GZIP, SNAPPY, LZ4, ZSTD = 0, 1, 2, 3, 4


class DecompressionError(Exception):
    """The payload is not a valid stream of its codec (Kafka: 'Failed to decompress')."""


class DecompressedTooLarge(Exception):
    """The payload decompresses to more than the limit."""


def decompressed_chunks(
    codec: int, payload: bytes | memoryview, limit: int, chunk_bytes: int = CHUNK_BYTES
) -> Iterator[bytes]:
    """The decompressed payload, in non-empty pieces of at most `chunk_bytes` bytes."""
    reader = _READERS.get(codec)
    if reader is None:
        raise DecompressionError(f"unknown compression codec {codec}")
    produced = 0
    pending: list[bytes] = []  # small pieces (LZ4 and xerial blocks), joined into a chunk
    pending_bytes = 0
    try:
        for piece in reader(memoryview(payload), limit, chunk_bytes):
            produced += len(piece)
            if produced > limit:
                raise DecompressedTooLarge(f"records decompress to more than {limit} bytes")
            if pending_bytes + len(piece) > chunk_bytes and pending:
                yield b"".join(pending)
                pending.clear()
                pending_bytes = 0
            if piece:
                pending.append(piece)
                pending_bytes += len(piece)
        if pending:
            yield b"".join(pending)
    except (zlib.error, cramjam.DecompressionError, struct.error) as exc:  # zstd's: _zstd
        raise DecompressionError(str(exc)) from None


# -- gzip ----------------------------------------------------------------------------------

_GZIP_MAGIC = b"\x1f\x8b"
# Input is fed in slices so that `unconsumed_tail` (a copy) stays small.
_INPUT_SLICE_BYTES = 64 * 1024


def _gzip(payload: memoryview, limit: int, chunk_bytes: int) -> Iterator[bytes]:
    position = 0
    while True:  # one decompressor per member
        decompressor = zlib.decompressobj(wbits=31)  # the gzip container only, as Java's
        data: bytes | memoryview = b""
        while not decompressor.eof:
            if not data and position < len(payload):
                data = payload[position : position + _INPUT_SLICE_BYTES]
                position += len(data)
            piece = decompressor.decompress(data, min(chunk_bytes, limit + 1))
            data = decompressor.unconsumed_tail
            if not piece and not data and position >= len(payload) and not decompressor.eof:
                raise DecompressionError("gzip stream is truncated")
            yield piece
        # What follows the member in the last input slice starts the next one (if any).
        position -= len(decompressor.unused_data)
        if bytes(payload[position : position + 2]) != _GZIP_MAGIC:
            return


# -- snappy --------------------------------------------------------------------------------

_XERIAL_MAGIC = b"\x82SNAPPY\x00"
_XERIAL_HEADER_BYTES = 16  # magic (8), version (4), compatible version (4)


# Snappy's densest element, a 3-byte copy, yields 64 bytes: no valid block expands more.
_SNAPPY_EXPANSION_MAX = 22


def _snappy_raw_block(block: memoryview, budget: int) -> bytearray:
    size = cramjam.snappy.decompress_raw_len(block)
    if size > _SNAPPY_EXPANSION_MAX * len(block):
        raise DecompressionError(f"snappy block of {len(block)} bytes declares {size}")
    if size > budget:
        raise DecompressedTooLarge(f"snappy block declares {size} bytes, over the limit")
    out = bytearray(size)
    written = cramjam.snappy.decompress_raw_into(block, out)
    if written != size:
        raise DecompressionError("snappy block is shorter than its preamble declares")
    return out


def _snappy(payload: memoryview, limit: int, chunk_bytes: int) -> Iterator[bytes]:
    if bytes(payload[: len(_XERIAL_MAGIC)]) != _XERIAL_MAGIC:
        yield from _slices(_snappy_raw_block(payload, limit + 1), chunk_bytes)
        return
    if len(payload) < _XERIAL_HEADER_BYTES:
        raise DecompressionError("xerial snappy header is truncated")
    position = _XERIAL_HEADER_BYTES
    produced = 0
    while position < len(payload):
        if position + 4 > len(payload):
            raise DecompressionError("xerial snappy block length is truncated")
        (size,) = struct.unpack_from(">i", payload, position)
        position += 4
        if size < 0 or position + size > len(payload):
            raise DecompressionError("xerial snappy block is truncated")
        block = _snappy_raw_block(payload[position : position + size], limit + 1 - produced)
        position += size
        produced += len(block)
        yield from _slices(block, chunk_bytes)


# -- lz4 -----------------------------------------------------------------------------------

_LZ4_MAGIC = 0x184D2204
_LZ4_UNCOMPRESSED_BIT = 0x80000000


def _lz4(payload: memoryview, limit: int, chunk_bytes: int) -> Iterator[bytes]:
    block_max, block_checksum, position = _lz4_frame(payload)
    # Never more output room than the limit leaves: a block that does not fit is refused
    # as too large (it may also be corrupt; the batch is refused either way).
    out_bytes = min(block_max, limit + 1)
    out = _block_buffer(out_bytes)
    produced = 0
    while True:
        if position + 4 > len(payload):
            raise DecompressionError("lz4 stream ended prematurely")
        (size,) = struct.unpack_from("<I", payload, position)
        position += 4
        if size == 0:  # end mark; a content checksum may follow, unchecked as in Kafka
            return
        stored = bool(size & _LZ4_UNCOMPRESSED_BIT)
        size &= ~_LZ4_UNCOMPRESSED_BIT
        if size > block_max or position + size > len(payload):
            raise DecompressionError("lz4 block size is invalid")
        block = payload[position : position + size]
        position += size + (4 if block_checksum else 0)
        room = min(out_bytes, limit + 1 - produced)
        data = _lz4_block(block, stored, out, room, room < block_max, limit)
        produced += len(data)
        if produced > limit:
            raise DecompressedTooLarge(f"records decompress to more than {limit} bytes")
        yield from _slices(data, chunk_bytes)


def lz4_one_block(payload: memoryview, limit: int) -> bytes | None:
    """The decompressed payload of the frame producers send for a small batch (one block
    then the end mark), if it is that and decompresses to at most `limit` bytes; None
    for anything else, valid or not: `decompressed_chunks` reads it then, and names what
    is wrong. Bytes after the end mark are ignored, as there."""
    try:
        block_max, block_checksum, position = _lz4_frame(payload)
        (size,) = struct.unpack_from("<I", payload, position)
        position += 4
        stored = bool(size & _LZ4_UNCOMPRESSED_BIT)
        size &= ~_LZ4_UNCOMPRESSED_BIT
        end = position + size + (4 if block_checksum else 0)
        if not 0 < size <= block_max or end + 4 > len(payload):
            return None
        if struct.unpack_from("<I", payload, end)[0] != 0:
            return None  # more blocks, or no end mark
        room = min(block_max, limit + 1)
        block = payload[position : position + size]
        data = _lz4_block(block, stored, _block_buffer(room), room, True, limit)
    except (DecompressionError, DecompressedTooLarge, cramjam.DecompressionError, struct.error):
        return None
    return data if len(data) <= limit else None


def _lz4_frame(payload: memoryview) -> tuple[int, bool, int]:
    """An lz4 frame's header checked: (block size bound, whether each block carries a
    checksum, the position of the first block)."""
    if len(payload) < 7:
        raise DecompressionError("lz4 frame header is truncated")
    if struct.unpack_from("<I", payload, 0)[0] != _LZ4_MAGIC:
        raise DecompressionError("lz4 frame magic is wrong")
    flg, bd = payload[4], payload[5]
    # Kafka's Lz4BlockInputStream: version 1, independent blocks, no dictionary id.
    if flg & 0x03 or not flg & 0x20 or flg >> 6 != 1:
        raise DecompressionError(f"lz4 frame flags {flg:#x} are not supported")
    if bd & 0x8F or not 4 <= (bd >> 4) & 7 <= 7:
        raise DecompressionError(f"lz4 block descriptor {bd:#x} is invalid")
    position = 6 + (8 if flg & 0x08 else 0)
    if position >= len(payload):
        raise DecompressionError("lz4 frame header is truncated")
    if payload[position] != _descriptor_checksum(bytes(payload[4:position])):
        raise DecompressionError("lz4 frame descriptor checksum mismatch")
    return 1 << (2 * ((bd >> 4) & 7) + 8), bool(flg & 0x10), position + 1


def _lz4_block(
    block: memoryview, stored: bool, out: bytearray, room: int, limited: bool, limit: int
) -> bytes:
    """One block's bytes, decompressed into `out` (at most `room` of them) and copied out.
    A block that does not fit is too large when `limited` (the room is the limit's)."""
    if stored:
        if len(block) > room:
            raise DecompressedTooLarge(f"records decompress to more than {limit} bytes")
        return bytes(block)
    try:
        written = cramjam.lz4.decompress_block_into(block, memoryview(out)[:room], output_len=room)
    except cramjam.DecompressionError:
        if limited:
            raise DecompressedTooLarge(f"records decompress to more than {limit} bytes") from None
        raise
    return bytes(memoryview(out)[:written])


@functools.lru_cache(maxsize=64)
def _descriptor_checksum(descriptor: bytes) -> int:
    """The frame descriptor's checksum byte: a client sends the same two descriptor bytes
    in every batch, and the pure-Python hash cost more than decompressing a small one."""
    return (xxh32(descriptor) >> 8) & 0xFF


# A block's output buffer, kept per thread for the usual block sizes (64 KiB from
# librdkafka and the Java client): zero-filling a new one for every batch cost more than
# decompressing a small batch. Safe to share within a thread because each block's output
# is copied out before the generator yields. Larger blocks (up to 4 MiB) get their own.
_REUSED_BLOCK_BYTES_MAX = 256 * 1024
_buffers = threading.local()


def _block_buffer(size: int) -> bytearray:
    if size > _REUSED_BLOCK_BYTES_MAX:
        return bytearray(size)
    buffer: bytearray | None = getattr(_buffers, "block", None)
    if buffer is None or len(buffer) < size:
        buffer = _buffers.block = bytearray(_REUSED_BLOCK_BYTES_MAX)
    return buffer


_P1, _P2, _P3, _P4, _P5 = 2654435761, 2246822519, 3266489917, 668265263, 374761393
_M32 = 0xFFFFFFFF


def _rotl(value: int, bits: int) -> int:
    return ((value << bits) | (value >> (32 - bits))) & _M32


def xxh32(data: bytes, seed: int = 0) -> int:
    """XXH32, for the LZ4 frame descriptor checksum (a few bytes; pure Python is enough)."""
    length = len(data)
    position = 0
    if length >= 16:
        lanes = [(seed + _P1 + _P2) & _M32, (seed + _P2) & _M32, seed, (seed - _P1) & _M32]
        while position + 16 <= length:
            for lane in range(4):
                (word,) = struct.unpack_from("<I", data, position)
                lanes[lane] = (_rotl((lanes[lane] + word * _P2) & _M32, 13) * _P1) & _M32
                position += 4
        digest = _rotl(lanes[0], 1) + _rotl(lanes[1], 7) + _rotl(lanes[2], 12)
        digest = (digest + _rotl(lanes[3], 18)) & _M32
    else:
        digest = (seed + _P5) & _M32
    digest = (digest + length) & _M32
    while position + 4 <= length:
        (word,) = struct.unpack_from("<I", data, position)
        digest = (_rotl((digest + word * _P3) & _M32, 17) * _P4) & _M32
        position += 4
    while position < length:
        digest = (_rotl((digest + data[position] * _P5) & _M32, 11) * _P1) & _M32
        position += 1
    digest = ((digest ^ (digest >> 15)) * _P2) & _M32
    digest = ((digest ^ (digest >> 13)) * _P3) & _M32
    return digest ^ (digest >> 16)


# -- zstd ----------------------------------------------------------------------------------

# The largest window a frame may ask for: zstd's own default limit (128 MiB), which is
# also what zstd-jni in Kafka accepts, lowered towards the output limit but never below
# 8 MiB (the window zstd level 19 streams declare). Window memory is only touched as
# output is produced, and output stops at the limit.
_ZSTD_WINDOW_LOG_MAX = 27
_ZSTD_WINDOW_LOG_FLOOR = 23


def _zstd(payload: memoryview, limit: int, chunk_bytes: int) -> Iterator[bytes]:
    if not payload:  # zstd-jni reads no input as an empty stream (no error)
        return
    zstd = zstd_module()
    try:
        yield from _zstd_frames(zstd, payload, limit, chunk_bytes)
    except zstd.ZstdError as exc:
        raise DecompressionError(str(exc)) from None


def _zstd_frames(
    zstd: ModuleType, payload: memoryview, limit: int, chunk_bytes: int
) -> Iterator[bytes]:
    window_log = max(_ZSTD_WINDOW_LOG_FLOOR, min(_ZSTD_WINDOW_LOG_MAX, limit.bit_length()))
    options = {zstd.DecompressionParameter.window_log_max: window_log}
    data: bytes | memoryview = payload
    while True:  # one decompressor per frame; zstd-jni also reads frame after frame
        decompressor = zstd.ZstdDecompressor(options=options)
        while not decompressor.eof:
            piece = decompressor.decompress(data, min(chunk_bytes, limit + 1))
            data = b""
            if not piece and decompressor.needs_input:
                raise DecompressionError("zstd frame is truncated")
            yield piece
        data = decompressor.unused_data
        if not data:
            return


# -- no compression ------------------------------------------------------------------------


def _none(payload: memoryview, limit: int, chunk_bytes: int) -> Iterator[bytes]:
    yield from _slices(bytes(payload), chunk_bytes)


def _slices(data: bytes | bytearray, chunk_bytes: int) -> Iterator[bytes]:
    """`data` in pieces of at most `chunk_bytes` (copies of a chunk each, never of all)."""
    if len(data) <= chunk_bytes and isinstance(data, bytes):
        yield data
        return
    view = memoryview(data)
    for start in range(0, len(data), chunk_bytes):
        yield bytes(view[start : start + chunk_bytes])


_READERS = {NONE: _none, GZIP: _gzip, SNAPPY: _snappy, LZ4: _lz4, ZSTD: _zstd}
