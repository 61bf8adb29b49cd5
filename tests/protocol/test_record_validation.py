"""Unit tests of bounded decompression (every codec's framing as Kafka reads it) and of
the record-level checks and the messages Kafka gives for them."""

from __future__ import annotations

import gzip
import os
import struct
import tracemalloc

import cramjam
import crc32c
import pytest

from conformance import wire
from conformance.wire import Rec
from contextplane.errors import KafkaError
from contextplane.limits import RECORD_ERRORS_LISTED_MAX
from contextplane.protocol import record_validation
from contextplane.protocol.decompress import (
    GZIP,
    LZ4,
    NONE,
    SNAPPY,
    ZSTD,
    DecompressedTooLarge,
    DecompressionError,
    decompressed_chunks,
    xxh32,
    zstd_module,
)
from contextplane.protocol.error_codes import ErrorCode
from contextplane.protocol.record_validation import (
    RecordErrors,
    RecordPolicy,
    read_records,
    validate_records,
)
from contextplane.protocol.records import split_batches
from tests.hostile.support import batch_around, compress

NOW = 1_800_000_000_000
LONG_MAX = 2**63 - 1
PAYLOAD = b"".join(os.urandom(50) + b"x" * 200 for _ in range(400))  # 100 KB, compressible
CODEC_IDS = {"none": NONE, "gzip": GZIP, "snappy": SNAPPY, "lz4": LZ4, "zstd": ZSTD}


def policy(**overrides: object) -> RecordPolicy:
    values: dict[str, object] = {
        "topic_partition": "t-0",
        "compacted": False,
        "log_append_time": False,
        "timestamp_before_max_ms": LONG_MAX,
        "timestamp_after_max_ms": 3_600_000,
        "decompressed_bytes_max": 100 << 20,
    }
    values.update(overrides)
    return RecordPolicy(**values)  # type: ignore[arg-type]


def decompress(codec: int, payload: bytes, limit: int = 1 << 30, chunk: int = 4096) -> bytes:
    pieces = list(decompressed_chunks(codec, payload, limit, chunk))
    assert all(0 < len(piece) <= chunk for piece in pieces)
    return b"".join(pieces)


def validate(batch: bytes, **overrides: object) -> None:
    ((header, view),) = split_batches(batch, 2**31)
    validate_records(header, view, policy(**overrides), NOW)


def kafka_error(batch: bytes, **overrides: object) -> KafkaError:
    with pytest.raises(KafkaError) as caught:
        validate(batch, **overrides)
    return caught.value


# -- decompression -------------------------------------------------------------------------


@pytest.mark.parametrize("codec", list(CODEC_IDS))
def test_every_codec_round_trips_in_bounded_chunks(codec: str) -> None:
    assert decompress(CODEC_IDS[codec], compress(codec, PAYLOAD)) == PAYLOAD


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_output_past_the_limit_is_refused(codec: str) -> None:
    with pytest.raises(DecompressedTooLarge):
        decompress(CODEC_IDS[codec], compress(codec, PAYLOAD), limit=len(PAYLOAD) - 1)
    assert decompress(CODEC_IDS[codec], compress(codec, PAYLOAD), limit=len(PAYLOAD)) == PAYLOAD


def test_gzip_members_follow_one_another_and_trailing_junk_is_ignored() -> None:
    # java.util.zip.GZIPInputStream reads every member and ignores what is not one.
    two = gzip.compress(b"first ") + gzip.compress(b"second")
    assert decompress(GZIP, two) == b"first second"
    assert decompress(GZIP, two + b"junk") == b"first second"
    with pytest.raises(DecompressionError):
        decompress(GZIP, two[:-3])
    with pytest.raises(DecompressionError):
        decompress(GZIP, b"")


def test_snappy_raw_and_xerial_blocks_are_checked_before_allocation() -> None:
    assert decompress(SNAPPY, bytes(cramjam.snappy.compress_raw(PAYLOAD))) == PAYLOAD
    # A preamble declaring far more than the block can hold is corrupt, whatever the limit.
    lying = b"\x80\x80\x80\x80\x04" + b"\x00" * 8  # declares 1 GiB
    with pytest.raises(DecompressionError):
        decompress(SNAPPY, lying)
    xerial = compress("snappy", PAYLOAD)
    with pytest.raises(DecompressedTooLarge):
        decompress(SNAPPY, xerial, limit=1000)
    with pytest.raises(DecompressionError):
        decompress(SNAPPY, xerial[:-1])


def _lz4_frame(blocks: list[bytes], flg: int = 0x60, bd: int = 0x40, extra: bytes = b"") -> bytes:
    descriptor = bytes([flg, bd]) + extra
    header = struct.pack("<I", 0x184D2204) + descriptor + bytes([(xxh32(descriptor) >> 8) & 0xFF])
    return header + b"".join(blocks) + struct.pack("<I", 0)


def _lz4_block(data: bytes) -> bytes:
    block = bytes(cramjam.lz4.compress_block(data, store_size=False))
    return struct.pack("<I", len(block)) + block


def test_lz4_frames_as_kafkas_reader_takes_them() -> None:
    data = PAYLOAD[:60_000]
    assert decompress(LZ4, _lz4_frame([_lz4_block(data), _lz4_block(data)])) == data * 2
    stored = struct.pack("<I", 0x80000000 | 5) + b"hello"  # an uncompressed block
    assert decompress(LZ4, _lz4_frame([stored])) == b"hello"
    # Content size present (FLG bit 3): eight bytes more in the descriptor.
    sized = _lz4_frame([stored], flg=0x68, extra=struct.pack("<Q", 5))
    assert decompress(LZ4, sized) == b"hello"
    # Bytes after the end mark are never read, as in Lz4BlockInputStream.
    assert decompress(LZ4, _lz4_frame([stored]) + b"junk") == b"hello"


@pytest.mark.parametrize(
    ("frame", "what"),
    [
        (_lz4_frame([], flg=0x40), "dependent blocks"),
        (_lz4_frame([], flg=0x61), "dictionary id / reserved bit"),
        (_lz4_frame([], bd=0x30), "block size below 64 KB"),
        (_lz4_frame([])[:6] + b"\x00" + _lz4_frame([])[7:], "descriptor checksum"),
        (_lz4_frame([_lz4_block(b"x" * 100)])[:-6], "truncated block"),
        (_lz4_frame([struct.pack("<I", 70_000) + bytes(70_000)]), "block over the maximum"),
        (b"\x00" * 12, "magic"),
    ],
)
def test_lz4_frames_kafka_refuses_are_refused(frame: bytes, what: str) -> None:
    with pytest.raises(DecompressionError):
        decompress(LZ4, frame)


def test_lz4_output_room_is_never_more_than_the_limit() -> None:
    frame = _lz4_frame([_lz4_block(PAYLOAD[:60_000])])
    with pytest.raises(DecompressedTooLarge):
        decompress(LZ4, frame, limit=1000)


def test_zstd_frames_follow_one_another_and_windows_are_capped() -> None:
    zstd = zstd_module()
    frame = zstd.compress(PAYLOAD)
    assert decompress(ZSTD, frame + frame) == PAYLOAD * 2
    assert decompress(ZSTD, b"") == b""  # zstd-jni reads no input as an empty stream
    with pytest.raises(DecompressionError):
        decompress(ZSTD, frame[:-4])
    with pytest.raises(DecompressionError):
        decompress(ZSTD, frame + b"junk")
    huge_window = zstd.ZstdCompressor(options={zstd.CompressionParameter.window_log: 28})
    streamed = huge_window.compress(b"x" * 1000) + huge_window.flush()
    with pytest.raises(DecompressionError):
        decompress(ZSTD, streamed)


def test_xxh32_known_values() -> None:
    assert xxh32(b"") == 0x02CC5D05
    assert xxh32(b"a") == 0x550D7456
    assert xxh32(b"abc") == 0x32D153FF
    assert xxh32(b"Nobody inspects the spammish repetition") == 0xE2293B2F


@pytest.mark.parametrize("codec", ["gzip", "lz4", "zstd"])
def test_a_bomb_allocates_a_few_chunks_not_its_size(codec: str) -> None:
    record = b"\x00" * 64  # not the start of a valid record: refused at once
    bomb = batch_around(compress(codec, record + bytes(64 << 20)), 1, CODEC_IDS[codec])
    tracemalloc.start()
    try:
        assert kafka_error(bomb).code == ErrorCode.invalid_record
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < len(bomb) + (2 << 20), peak


# -- record checks and their messages ------------------------------------------------------


def test_keyless_records_on_a_compacted_topic_are_each_named() -> None:
    batch = wire.encode_batch([Rec(b"a", key=b"k"), Rec(b"b"), Rec(b"c", key=b"k"), Rec(b"d")])
    error = kafka_error(batch, compacted=True)
    assert isinstance(error, RecordErrors)
    assert error.code == ErrorCode.invalid_record
    message = "Compacted topic cannot accept message without key in topic partition t-0"
    assert error.record_errors == [(1, message), (3, message)]
    assert error.message == (
        "One or more records have been rejected due to 2 record errors in total, and only "
        f"showing the first three errors at most: [RecordError(batchIndex=1, message='{message}'), "
        f"RecordError(batchIndex=3, message='{message}')]"
    )
    validate(batch, compacted=False)


def test_record_errors_are_listed_up_to_the_limit_and_all_counted() -> None:
    count = RECORD_ERRORS_LISTED_MAX + 5
    error = kafka_error(wire.encode_batch([Rec(b"v")] * count), compacted=True)
    assert isinstance(error, RecordErrors)
    assert len(error.record_errors) == RECORD_ERRORS_LISTED_MAX
    assert f"due to {count} record errors in total" in error.message


def test_timestamps_outside_the_window_are_named_with_kafkas_bounds() -> None:
    batch = wire.encode_batch(
        [Rec(b"a", timestamp=NOW), Rec(b"b", timestamp=NOW + 7_200_000)], timestamp=NOW
    )
    error = kafka_error(batch)
    assert isinstance(error, RecordErrors)
    assert error.code == ErrorCode.invalid_timestamp
    assert error.message == "One or more records have been rejected due to invalid timestamp"
    # Java long arithmetic: the lower bound of a Long.MAX_VALUE window wraps nowhere.
    assert error.record_errors == [
        (
            1,
            f"Timestamp {NOW + 7_200_000} of message with offset 1 is out of range. The "
            f"timestamp should be within [{NOW - LONG_MAX}, {NOW + 3_600_000}]",
        )
    ]
    validate(batch, timestamp_after_max_ms=LONG_MAX)  # the upper bound wraps: Kafka accepts


def test_a_timestamp_error_outranks_key_errors_and_a_key_error_hides_its_timestamp() -> None:
    batch = wire.encode_batch(
        [Rec(b"a", timestamp=NOW + 7_200_000), Rec(b"b", key=b"k", timestamp=NOW + 7_200_000)],
        timestamp=NOW,
    )
    error = kafka_error(batch, compacted=True)
    assert isinstance(error, RecordErrors)
    assert error.code == ErrorCode.invalid_timestamp
    assert [index for index, _ in error.record_errors] == [0, 1]
    assert error.record_errors[0][1].startswith("Compacted topic cannot accept")


def test_no_timestamp_is_exempt_and_log_append_time_topics_are_not_checked() -> None:
    no_timestamp = wire.encode_batch([Rec(b"a", timestamp=-1)], timestamp=-1)
    validate(no_timestamp, timestamp_before_max_ms=0, timestamp_after_max_ms=0)
    future = wire.encode_batch([Rec(b"a", timestamp=NOW + 7_200_000)], timestamp=NOW + 7_200_000)
    validate(future, log_append_time=True)
    assert kafka_error(future).code == ErrorCode.invalid_timestamp


@pytest.mark.parametrize(
    ("codec", "kind"), [("none", "DefaultRecord"), ("zstd", "PartialDefaultRecord")]
)
def test_producers_may_not_claim_log_append_time(codec: str, kind: str) -> None:
    record = wire.encode_batch([Rec(b"vv", key=None)], compression="none")[61:]
    raw = compress(codec, record)
    batch = bytearray(batch_around(raw, 1, CODEC_IDS[codec], timestamp_ms=NOW))
    struct.pack_into(">h", batch, 21, CODEC_IDS[codec] | 0x08)
    struct.pack_into(">I", batch, 17, crc32c.crc32c(bytes(batch[21:])))
    error = kafka_error(bytes(batch), log_append_time=True)
    assert isinstance(error, RecordErrors)
    sizes = "key=0 bytes, value=2 bytes" if codec == "none" else "key=-1 bytes, value=2 bytes"
    assert error.record_errors == [
        (
            0,
            f"Invalid timestamp type in message {kind}(offset=0, timestamp={NOW}, {sizes}). "
            "Producer should not set timestamp type to LogAppendTime.",
        )
    ]
    validate(bytes(batch))  # a CreateTime topic checks the claimed time's range only


def test_reading_a_stored_batch_stops_quietly_at_a_bad_record() -> None:
    good = wire.encode_batch([Rec(b"a"), Rec(b"b")], compression="zstd")
    ((header, view),) = split_batches(good, 2**31)
    assert list(read_records(header, view)) == [(0, 0), (1, 0)]
    broken = batch_around(compress("zstd", b"\x02\x00\x00\x00"), 2, ZSTD)
    ((header, view),) = split_batches(broken, 2**31)
    assert list(read_records(header, view)) == []


def test_a_produced_batch_is_walked_in_place() -> None:
    # A produce request's one batch per partition is a view of all of its records bytes:
    # walked without a copy (1 MB costs several walks); any other view is copied once.
    data = wire.encode_batch([b"v"] * 3)
    ((_, view),) = split_batches(data, 1 << 20)
    assert record_validation._as_bytes(view) is data
    assert record_validation._as_bytes(data) is data
    assert record_validation._as_bytes(view[1:]) == data[1:]
    assert record_validation._as_bytes(memoryview(bytearray(data))) == data
