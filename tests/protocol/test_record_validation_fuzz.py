"""Fuzzing the record layer: compressed payloads with valid CRCs and record framing.

* Batches from a real client encoder (aiokafka's DefaultRecordBatchBuilder, every codec)
  are always accepted, whatever the records, and read back with the right deltas.
* Mutated record payloads (recompressed, CRC fixed) are accepted exactly when a plain
  reference parser of the v2 record format accepts them, whatever the chunk size the
  validator decompresses in (records straddle chunks at every possible byte).
* Mutated compressed bytes only ever raise KafkaError with a documented code.
* Decompressed output never passes the bound, and what is allocated stays near it.
* Record-level errors (keys on compacted topics, timestamp windows) name exactly the
  records a reference of LogValidator's rules names.
* The record walk compiled by mypyc and the same module interpreted agree on every
  buffer: the same stop, the same figures, the same error message. The properties above
  run with both. The compiled walk must be there (a silent fallback would cost the hot
  path ~60x) unless CONTEXTPLANE_ALLOW_INTERPRETED=1 says running interpreted is meant.
"""

from __future__ import annotations

import contextlib
import importlib.machinery
import os
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType

import pytest
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from conformance import wire
from conformance.wire import Rec
from contextplane.errors import KafkaError
from contextplane.protocol import record_validation, record_walk
from contextplane.protocol.decompress import GZIP, LZ4, NONE, SNAPPY, ZSTD
from contextplane.protocol.error_codes import ErrorCode
from contextplane.protocol.record_validation import (
    RecordErrors,
    RecordPolicy,
    read_records,
    validate_records,
)
from contextplane.protocol.records import BATCH_HEADER_BYTES, split_batches
from tests.hostile.support import batch_around, compress

from .test_decoder_fuzz import mutated

_SCALE = max(1, int(os.environ.get("CONTEXTPLANE_FUZZ_SCALE", "1")))
FUZZ = settings(
    max_examples=80 * _SCALE,
    derandomize=True,
    deadline=None,
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

NOW = 1_800_000_000_000
LONG_MAX = 2**63 - 1
CODECS = {"none": NONE, "gzip": GZIP, "snappy": SNAPPY, "lz4": LZ4, "zstd": ZSTD}
ALLOWED = {
    ErrorCode.invalid_record,  # record framing
    ErrorCode.unknown_server_error,  # a payload that does not decompress (Kafka 4.4's code)
    ErrorCode.message_too_large,  # past the decompression bound
}


WALKS = ["compiled", "interpreted"]
INTERPRETED_OK = os.environ.get("CONTEXTPLANE_ALLOW_INTERPRETED") == "1"
NOT_COMPILED = (
    "protocol/record_walk.py runs interpreted: its compiled copy is missing or was built "
    "from another version of it (`pip install -e .` compiles it). Set "
    "CONTEXTPLANE_ALLOW_INTERPRETED=1 where running interpreted is intended."
)


def walk_module(impl: str) -> ModuleType:
    """The interpreted module, or its compiled copy (failing without it, unless running
    interpreted is intended: then the test is skipped)."""
    if impl == "interpreted":
        return record_walk
    if record_validation.walker is record_walk:
        if INTERPRETED_OK:
            pytest.skip("CONTEXTPLANE_ALLOW_INTERPRETED=1: no compiled walk to compare")
        pytest.fail(NOT_COMPILED)
    return record_validation.walker


@contextlib.contextmanager
def walking_with(impl: str) -> Iterator[None]:
    """Validate with the compiled walk or the interpreted one for the duration."""
    saved = record_validation.walker
    record_validation.walker = walk_module(impl)
    try:
        yield
    finally:
        record_validation.walker = saved


def test_the_record_walk_is_compiled() -> None:
    # Optional in setup.py (a machine without a C compiler still installs), but the
    # project's machines have one: a silent fallback would cost ~60x on the hot path.
    if INTERPRETED_OK:
        pytest.skip("CONTEXTPLANE_ALLOW_INTERPRETED=1: running interpreted is intended")
    compiled = record_validation.walker
    assert compiled is not record_walk, NOT_COMPILED
    assert compiled.__file__ is not None
    assert compiled.__file__.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))


def policy(limit: int = 1 << 30, **overrides: object) -> RecordPolicy:
    values: dict[str, object] = {
        "topic_partition": "t-0",
        "compacted": False,
        "log_append_time": False,
        "timestamp_before_max_ms": LONG_MAX,
        "timestamp_after_max_ms": LONG_MAX,
        "decompressed_bytes_max": limit,
    }
    values.update(overrides)
    return RecordPolicy(**values)  # type: ignore[arg-type]


def outcome(batch: bytes, rules: RecordPolicy, chunk: int = 256 * 1024) -> ErrorCode | None:
    """None if accepted, else the Kafka error code; anything else escapes and fails."""
    ((header, view),) = split_batches(batch, 2**31)
    try:
        validate_records(header, view, rules, NOW, chunk)
    except KafkaError as exc:
        return exc.code
    return None


# -- a real client's batches ---------------------------------------------------------------


@dataclass(frozen=True)
class Record:
    key: bytes | None
    value: bytes | None
    timestamp_delta: int
    headers: tuple[tuple[str, bytes | None], ...]


records_st = st.lists(
    st.builds(
        Record,
        key=st.none() | st.binary(max_size=40),
        value=st.none() | st.binary(max_size=300),
        timestamp_delta=st.integers(0, 10_000_000),
        headers=st.lists(
            st.tuples(st.text(max_size=8), st.none() | st.binary(max_size=20)), max_size=3
        ).map(tuple),
    ),
    min_size=1,
    max_size=40,
)


def encode(records: list[Record], codec: str) -> bytes:
    builder = DefaultRecordBatchBuilder(
        magic=2,
        compression_type=CODECS[codec],
        is_transactional=0,
        producer_id=-1,
        producer_epoch=-1,
        base_sequence=-1,
        batch_size=1 << 30,
    )
    for delta, record in enumerate(records):
        assert builder.append(
            delta,
            timestamp=NOW + record.timestamp_delta,
            key=record.key,
            value=record.value,
            headers=list(record.headers),
        )
    return bytes(builder.build())


@pytest.mark.parametrize("impl", WALKS)
@FUZZ
@given(
    records=records_st,
    codec=st.sampled_from(list(CODECS)),
    chunk=st.integers(1, 512),
)
def test_real_client_batches_are_accepted_and_read_back(
    impl: str, records: list[Record], codec: str, chunk: int
) -> None:
    with walking_with(impl):
        _accepted_and_read_back(records, codec, chunk)


def _accepted_and_read_back(records: list[Record], codec: str, chunk: int) -> None:
    batch = encode(records, codec)
    assert outcome(batch, policy(), chunk) is None
    assert outcome(batch, policy()) is None
    ((header, view),) = split_batches(batch, 2**31)
    got = list(read_records(header, view))
    base = min(r.timestamp_delta for r in records[:1])  # aiokafka: the first record's time
    assert got == [(i, r.timestamp_delta - base) for i, r in enumerate(records)]


# -- mutated records against a reference parser ------------------------------------------


class _Reject(Exception):
    pass


def _reference_varint(data: bytes, position: int, max_bytes: int, bits: int) -> tuple[int, int]:
    value = 0
    for index in range(max_bytes):
        if position >= len(data):
            raise _Reject("truncated")
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << (7 * index)
        if byte < 0x80:
            value &= (1 << bits) - 1
            return (value >> 1) ^ -(value & 1), position
    raise _Reject("varint too long")


def reference_accepts(payload: bytes, count: int) -> bool:
    """The v2 record format, read plainly: `count` records, each exactly its length."""

    def varint(position: int) -> tuple[int, int]:
        return _reference_varint(payload, position, 5, 32)

    try:
        position = 0
        for index in range(count):
            length, position = varint(position)
            end = position + length
            if length <= 0 or end > len(payload):
                raise _Reject("record length")
            position += 1  # attributes
            _, position = _reference_varint(payload, position, 10, 64)  # timestamp delta
            offset_delta, position = varint(position)
            if offset_delta != index:
                raise _Reject("offset delta")
            for _field in ("key", "value"):
                size, position = varint(position)
                position += max(size, 0)
            headers, position = varint(position)
            if headers < 0 or headers > end - position:
                raise _Reject("header count")
            for _ in range(headers):
                size, position = varint(position)
                if size < 0:
                    raise _Reject("header key")
                position += size
                size, position = varint(position)
                position += max(size, 0)
            if position != end:
                raise _Reject("record length mismatch")
        return position == len(payload)
    except _Reject:
        return False


@pytest.mark.parametrize("impl", WALKS)
@FUZZ
@given(
    records=records_st,
    data=st.data(),
    codec=st.sampled_from(list(CODECS)),
    chunk=st.integers(1, 64),
)
def test_mutated_records_are_accepted_exactly_when_well_formed(
    impl: str, records: list[Record], data: st.DataObject, codec: str, chunk: int
) -> None:
    payload = encode(records, "none")[BATCH_HEADER_BYTES:]
    payload = data.draw(mutated(payload), label="payload")
    count = len(records) + data.draw(st.sampled_from([0, 0, 0, -1, 1]), label="count change")
    if count < 1:
        count = 1
    batch = batch_around(compress(codec, payload), count, CODECS[codec], timestamp_ms=NOW)
    expected = None if reference_accepts(payload, count) else ErrorCode.invalid_record
    with walking_with(impl):
        assert outcome(batch, policy(), chunk) == expected
        assert outcome(batch, policy()) == expected


@FUZZ
@given(records=records_st, data=st.data(), codec=st.sampled_from(list(CODECS)[1:]))
def test_mutated_compressed_bytes_raise_only_kafka_errors(
    records: list[Record], data: st.DataObject, codec: str
) -> None:
    payload = encode(records, codec)[BATCH_HEADER_BYTES:]
    garbled = data.draw(mutated(payload), label="compressed")
    batch = batch_around(garbled, len(records), CODECS[codec], timestamp_ms=NOW)
    limit = data.draw(st.sampled_from([1 << 30, 4096]), label="limit")
    got = outcome(batch, policy(limit), data.draw(st.integers(1, 4096), label="chunk"))
    assert got is None or got in ALLOWED, got


# -- the bound -----------------------------------------------------------------------------


def _one_record(value_size: int) -> bytes:
    from conformance.wire import _varint

    fields = b"\x00\x00\x00\x01" + _varint(value_size)  # attrs, ts, offset, null key
    return _varint(len(fields) + value_size + 1) + fields + bytes(value_size) + b"\x00"


@settings(FUZZ, max_examples=12 * _SCALE)
@given(
    codec=st.sampled_from(list(CODECS)[1:]),
    value_mib=st.integers(1, 24),
    limit_mib=st.integers(1, 24),
)
def test_decompressed_records_never_pass_the_bound(
    codec: str, value_mib: int, limit_mib: int
) -> None:
    record = _one_record(value_mib << 20)
    batch = batch_around(compress(codec, record), 1, CODECS[codec], timestamp_ms=NOW)
    del record
    limit = limit_mib << 20
    tracemalloc.start()
    try:
        got = outcome(batch, policy(limit))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    too_large = (value_mib << 20) + 10 > limit
    assert got == (ErrorCode.message_too_large if too_large else None)
    # Streamed: chunks and codec buffers, never the record. Raw snappy blocks are
    # allocated whole (at most the limit), so they are the exception.
    ceiling = len(batch) + (5 << 20) + (limit if codec == "snappy" else 0)
    assert peak < ceiling, (peak, ceiling)


# -- record errors against a reference of LogValidator's rules ------------------------------


@pytest.mark.parametrize("impl", WALKS)
@FUZZ
@given(
    keys=st.lists(st.booleans(), min_size=1, max_size=30),
    offsets=st.data(),
    compacted=st.booleans(),
    before=st.sampled_from([LONG_MAX, 86_400_000, 0]),
    after=st.sampled_from([LONG_MAX, 3_600_000, 0]),
    codec=st.sampled_from(["none", "zstd"]),
    chunk=st.integers(1, 64),
)
def test_record_errors_name_exactly_the_offending_records(
    impl: str,
    keys: list[bool],
    offsets: st.DataObject,
    compacted: bool,
    before: int,
    after: int,
    codec: str,
    chunk: int,
) -> None:
    stamps = [
        offsets.draw(st.sampled_from([NOW, NOW - 2 * 86_400_000, NOW + 7_200_000, -1]))
        for _ in keys
    ]
    headers = [offsets.draw(st.integers(0, 40), label="headers") for _ in keys]
    # The project's encoder: it keeps a record timestamp of -1 (aiokafka's does not).
    # Headers make records that straddle the (small) decompression chunks.
    records = [
        Rec(b"v", key=b"k" if keyed else None, headers=[("h", None)] * count, timestamp=stamp)
        for keyed, stamp, count in zip(keys, stamps, headers, strict=True)
    ]
    batch = wire.encode_batch(records, compression=codec, timestamp=NOW)
    expected: list[tuple[int, ErrorCode]] = []
    for index, (keyed, stamp) in enumerate(zip(keys, stamps, strict=True)):
        if compacted and not keyed:
            expected.append((index, ErrorCode.invalid_record))
        elif stamp != -1 and (NOW - stamp > before or stamp - NOW > after):
            expected.append((index, ErrorCode.invalid_timestamp))
    ((header, view),) = split_batches(batch, 2**31)
    rules = policy(
        compacted=compacted, timestamp_before_max_ms=before, timestamp_after_max_ms=after
    )
    with walking_with(impl):
        if not expected:
            validate_records(header, view, rules, NOW, chunk)
            return
        with pytest.raises(RecordErrors) as caught:
            validate_records(header, view, rules, NOW, chunk)
    codes = {code for _, code in expected}
    top = ErrorCode.invalid_timestamp if ErrorCode.invalid_timestamp in codes else codes.pop()
    assert caught.value.code == top
    assert [index for index, _ in caught.value.record_errors] == [i for i, _ in expected]


# -- the compiled walk against the interpreted one -------------------------------------


def _walk_result(impl: str, buf: bytes, position: int, count: int, index: int) -> object:
    module = walk_module(impl)
    state = module.WalkState(index)
    stop = module.walk(buf, position, count, state)
    return (stop, state.index, state.ts_low, state.ts_high, state.keyless, state.error)


@settings(FUZZ, max_examples=300 * _SCALE)
@given(data=st.data(), records=records_st)
def test_compiled_and_interpreted_walks_agree(data: st.DataObject, records: list[Record]) -> None:
    valid = encode(records, "none")[BATCH_HEADER_BYTES:]
    buf = data.draw(st.one_of(st.just(valid), mutated(valid), st.binary(max_size=120)), label="buf")
    position = data.draw(st.integers(0, len(buf)), label="position")
    index = data.draw(st.integers(0, 3), label="index")
    count = index + data.draw(st.integers(0, len(records) + 2), label="more")
    assert _walk_result("compiled", buf, position, count, index) == _walk_result(
        "interpreted", buf, position, count, index
    )


STRUCTURE = "Found invalid record structure"


@pytest.mark.parametrize(
    ("buf", "error"),
    [
        (b"", ""),  # nothing yet
        (b"\x80", ""),  # a cut length: the record is not complete yet
        (b"\xff\xff\xff\xff\xff\x01", "Varint is too long"),  # a length over five bytes
        (b"\x02\x00", STRUCTURE),  # attributes only
        (b"\x0e\x00" + b"\xff" * 10 + b"\x00", "Varlong is too long"),
        (b"\x00", "Invalid record size 0"),
        (b"\x01", "Invalid record size -1"),
        (b"\x0c\x00\x00\x02\x01\x01\x00", "Record 0 has offset delta 1; expected 0"),
        (b"\x0c\x00\x00\x00\x01\x01\x01", "Found invalid number of record headers -1"),
        (
            b"\x0c\x00\x00\x00\x01\x01\x06",
            "Found invalid number of record headers. 3 is too large",
        ),
        (b"\x10\x00\x00\x00\x01\x01\x02\x01\x00", "Invalid negative header key size -1"),
        (b"\x12\x00\x00\x00\x01\xfe\xff\xff\xff\x0f", STRUCTURE),  # a value of 2**31 - 1
        # Found by the fuzzer above: a header count of 0 in two bytes, past the record.
        (
            b"\x08\x00\x00\x00\x01\x01\x80\x00",
            "Invalid record size: expected to read 4 bytes in record payload, but instead read 7",
        ),
    ],
)
def test_both_walks_give_kafkas_framing_errors(buf: bytes, error: str) -> None:
    for count in (1, 2):
        interpreted = _walk_result("interpreted", buf, 0, count, 0)
        assert interpreted[-1] == error  # type: ignore[index]
        assert _walk_result("compiled", buf, 0, count, 0) == interpreted


LONG_MIN = -(2**63)


@pytest.mark.parametrize(
    ("buf", "figures"),
    [
        # timestamp deltas of the largest and the smallest varlong (ten bytes each)
        (b"\x1e\x00\xfe" + b"\xff" * 8 + b"\x01\x00\x01\x01\x00", (LONG_MAX, LONG_MAX, 1)),
        (b"\x1e\x00" + b"\xff" * 9 + b"\x01\x00\x01\x01\x00", (LONG_MIN, LONG_MIN, 1)),
        (b"\x14\x00\x00\x00\x01\xff\xff\xff\xff\x0f\x00", (0, 0, 1)),  # value of -2**31
        (b"\x16\x00\x06\x00\x02k\x01\x02\x02k\x02v", (3, 3, 0)),  # a key and a header
    ],
)
def test_both_walks_read_edge_records(buf: bytes, figures: tuple[int, int, int]) -> None:
    interpreted = _walk_result("interpreted", buf, 0, 1, 0)
    assert interpreted == (len(buf), 1, *figures, "")
    assert _walk_result("compiled", buf, 0, 1, 0) == interpreted
