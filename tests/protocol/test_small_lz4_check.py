"""A producer's usual small lz4 batch is checked whole, not through the chunked stream
(`record_validation._small_lz4_walked`, `decompress.lz4_one_block`): the two must answer
every batch alike.

LZ4 frames are built by hand in every shape Kafka's reader takes (block checksums or
not, a content size or not, stored or compressed blocks, one block or two, any block
size, bytes after the end mark), around records with keys, headers and timestamps, then
mutated byte by byte. Each batch is validated as the broker does and again with the
whole-batch check turned off, under policies that also refuse records (compacted
topics, timestamp windows) and limits that refuse sizes: the outcome (accepted, or the
error's code, message and record errors) must be the same. The well-formed one-block
frames must take the whole-batch check, so the comparison is never vacuous.
"""

from __future__ import annotations

import struct
from unittest import mock

import cramjam
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conformance import wire
from conformance.wire import Rec
from contextplane.errors import KafkaError
from contextplane.protocol import record_validation
from contextplane.protocol.decompress import LZ4, lz4_one_block, xxh32
from contextplane.protocol.record_validation import RecordErrors, RecordPolicy, validate_records
from contextplane.protocol.records import BATCH_HEADER_BYTES, parse_header
from tests.hostile.support import batch_around

from .test_decoder_fuzz import mutated

CHECKS = settings(
    max_examples=300,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
NOW = 1_800_000_000_000
LONG_MAX = 2**63 - 1

records = st.lists(
    st.builds(
        Rec,
        value=st.one_of(st.none(), st.binary(max_size=300)),
        key=st.one_of(st.none(), st.binary(max_size=20)),
        headers=st.lists(
            st.tuples(st.text(max_size=5), st.one_of(st.none(), st.binary(max_size=8))),
            max_size=3,
        ),
        timestamp=st.one_of(st.none(), st.integers(NOW - 10**9, NOW + 10**9)),
    ),
    max_size=6,
)


def raw_records(recs: list[Rec]) -> bytes:
    """The records' bytes as a producer writes them (after the batch header)."""
    return wire.encode_batch(recs, timestamp=NOW)[BATCH_HEADER_BYTES:]


@st.composite
def lz4_frames(draw: st.DrawFn, raw: bytes) -> bytes:
    """`raw` in an LZ4 frame of any shape Kafka's Lz4BlockInputStream reads."""
    checksums = draw(st.booleans(), label="block checksums")
    content_size = draw(st.booleans(), label="content size")
    bd = draw(st.integers(4, 7), label="block size code")
    descriptor = bytes([0x60 | (0x10 if checksums else 0) | (0x08 if content_size else 0)])
    descriptor += bytes([bd << 4]) + (struct.pack("<Q", len(raw)) if content_size else b"")
    out = struct.pack("<I", 0x184D2204) + descriptor + bytes([(xxh32(descriptor) >> 8) & 0xFF])
    cut = draw(st.integers(0, len(raw)), label="second block from") if raw else 0
    pieces = [raw[:cut], raw[cut:]] if draw(st.booleans(), label="two blocks") else [raw]
    for piece in pieces:
        if draw(st.booleans(), label="stored"):
            data, size = piece, len(piece) | 0x80000000
        else:
            data = bytes(cramjam.lz4.compress_block(piece, store_size=False))
            size = len(data)
        out += struct.pack("<I", size) + data
        if checksums:
            out += struct.pack("<I", xxh32(data))
    out += b"\x00\x00\x00\x00"
    return out + draw(st.sampled_from([b"", b"\x01\x02\x03\x04", b"\xff"]), label="after end")


policies = st.builds(
    RecordPolicy,
    topic_partition=st.just("t-0"),
    compacted=st.booleans(),
    log_append_time=st.booleans(),
    timestamp_before_max_ms=st.sampled_from([LONG_MAX, 10**9, 1000, -1]),
    timestamp_after_max_ms=st.sampled_from([LONG_MAX, 10**9, 1000]),
    decompressed_bytes_max=st.sampled_from([1 << 30, 4096, 200, 0]),
)


def outcome(batch: bytes, policy: RecordPolicy, chunk_bytes: int) -> object:
    try:
        validate_records(parse_header(batch), memoryview(batch), policy, NOW, chunk_bytes)
    except RecordErrors as exc:
        return (exc.code, exc.message, exc.record_errors)
    except KafkaError as exc:
        return (exc.code, exc.message)
    return None


def both_ways(batch: bytes, policy: RecordPolicy, chunk_bytes: int) -> tuple[object, object]:
    whole = outcome(batch, policy, chunk_bytes)
    with mock.patch.object(record_validation, "_small_lz4_walked", lambda *_: None):
        chunked = outcome(batch, policy, chunk_bytes)
    return whole, chunked


@CHECKS
@given(st.data(), records, policies, st.sampled_from([512 * 1024, 256, 64]))
def test_the_whole_batch_check_answers_as_the_chunked_one(
    data: st.DataObject, recs: list[Rec], policy: RecordPolicy, chunk_bytes: int
) -> None:
    raw = raw_records(recs)
    frame = data.draw(lz4_frames(raw), label="frame")
    if data.draw(st.booleans(), label="mutate"):
        frame = data.draw(mutated(frame), label="mutated frame")
    count = data.draw(st.sampled_from([len(recs), len(recs) + 1, max(len(recs) - 1, 0)]))
    batch = batch_around(frame, count, LZ4, NOW)
    whole, chunked = both_ways(batch, policy, chunk_bytes)
    assert whole == chunked


@CHECKS
@given(records, st.integers(4, 7), st.booleans())
def test_a_usual_small_batch_is_checked_whole(recs: list[Rec], bd: int, stored: bool) -> None:
    raw = raw_records(recs)
    descriptor = bytes([0x60, bd << 4])  # librdkafka's: no checksums, no content size
    block = raw if stored else bytes(cramjam.lz4.compress_block(raw, store_size=False))
    size = len(raw) | 0x80000000 if stored else len(block)
    frame = struct.pack("<I", 0x184D2204) + descriptor + bytes([(xxh32(descriptor) >> 8) & 0xFF])
    frame += struct.pack("<I", size) + block + b"\x00\x00\x00\x00"
    batch = batch_around(frame, len(recs), LZ4, NOW)
    payload = memoryview(batch)[BATCH_HEADER_BYTES:]
    if raw:
        assert lz4_one_block(payload, len(raw)) == raw
        assert lz4_one_block(payload, len(raw) - 1) is None  # over the limit: the stream's
    policy = RecordPolicy("t-0", False, False, LONG_MAX, LONG_MAX, 1 << 20)
    walked = record_validation._small_lz4_walked(parse_header(batch), batch, policy, 1 << 19)
    assert walked is not None or not raw
    assert both_ways(batch, policy, 1 << 19) == (None, None)
