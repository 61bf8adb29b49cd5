"""Fuzzing the two parsers that see untrusted bytes first: the request frame decoder and
the record batch validator. Whatever the bytes, only the documented exceptions may escape.

kio's native reader can abort the whole process (a Rust allocation failure on a huge
array length), which no `except` can catch, so frames go through `decode_isolated`: the
decode runs in a forked child and the parent sees how it ended. An abort then fails one
example, with the frame, instead of killing the test run.
"""

from __future__ import annotations

import contextlib
import faulthandler
import os
import struct
from dataclasses import dataclass
from typing import Any

import crc32c
import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from contextplane.errors import KafkaError, ProtocolError
from contextplane.protocol.codec import UnsupportedVersion, decode_request
from contextplane.protocol.error_codes import ErrorCode
from contextplane.protocol.records import BATCH_HEADER_BYTES, split_batches

from .support import REQUEST_SCHEMAS, TagInjectingEncoder, encode, extra_tags_for, schema_id

# CONTEXTPLANE_FUZZ_SCALE=20 runs twenty times the examples for a deeper local search;
# shrinking is off by default because every example costs a fork.
_SCALE = max(1, int(os.environ.get("CONTEXTPLANE_FUZZ_SCALE", "1")))
FUZZ = settings(
    max_examples=60 * _SCALE,
    derandomize=True,
    deadline=None,
    phases=[Phase.explicit, Phase.generate]
    + ([Phase.shrink] if os.environ.get("CONTEXTPLANE_FUZZ_SHRINK") else []),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# split_batches runs in-process (pure Python), so shrinking is cheap there.
BATCH_FUZZ = settings(FUZZ, phases=[Phase.explicit, Phase.generate, Phase.shrink])

ALLOWED_DECODE_ERRORS = (ProtocolError, UnsupportedVersion)

needs_fork = pytest.mark.skipif(not hasattr(os, "fork"), reason="isolation needs os.fork")


# -- frames ------------------------------------------------------------------------------


def frame_for(
    schema: type,
    body: bytes,
    correlation_id: int = 7,
    client_id: str | None = "fuzz",
    header_tags: bytes = b"\x00",
) -> bytes:
    """Request frame without the size prefix: header v1 (v2 if flexible), then the body."""
    header = struct.pack(">hhi", schema.__api_key__, schema.__version__, correlation_id)
    if client_id is None:
        header += b"\xff\xff"
    else:
        encoded = client_id.encode()
        header += struct.pack(">h", len(encoded)) + encoded
    if schema.__flexible__:
        header += header_tags
    return header + body


def decode_outcome(frame: bytes) -> str:
    """'ok', 'allowed: ...' or 'ESCAPED module.Class: message' for decode_request(frame)."""
    try:
        decode_request(frame)
    except ALLOWED_DECODE_ERRORS as exc:
        return f"allowed: {type(exc).__name__}"
    except BaseException as exc:  # noqa: B036 - classifying everything is the point
        return f"ESCAPED {type(exc).__module__}.{type(exc).__qualname__}: {exc}"[:2000]
    return "ok"


def decode_isolated(frame: bytes) -> str:
    """decode_outcome() in a forked child, so a native abort is reported, not fatal."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never return into pytest
        try:
            os.close(read_end)
            faulthandler.disable()  # pytest's handler would dump a trace on abort
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 2)  # the Rust abort prints a backtrace
            os.write(write_end, decode_outcome(frame).encode("utf-8", "replace"))
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as reader:
        outcome = reader.read().decode()
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return f"KILLED by signal {os.WTERMSIG(status)}"
    return outcome


def assert_only_allowed(frame: bytes) -> str:
    outcome = decode_isolated(frame)
    assert outcome == "ok" or outcome.startswith("allowed: "), f"{outcome} for frame {frame!r}"
    return outcome


@dataclass(frozen=True)
class Case:
    schema: type
    entity: Any
    body: bytes
    correlation_id: int
    client_id: str | None

    def frame(self, header_tags: bytes = b"\x00") -> bytes:
        return frame_for(self.schema, self.body, self.correlation_id, self.client_id, header_tags)


@st.composite
def valid_cases(draw: st.DrawFn, unknown_tags: bool = False) -> Case:
    schema = draw(st.sampled_from(REQUEST_SCHEMAS), label="schema")
    entity = draw(st.from_type(schema), label="entity")
    if unknown_tags and schema.__flexible__:
        extra = draw(extra_tags_for(schema, nested=True), label="extra")
        body = TagInjectingEncoder(lambda t: extra.get(t, [])).encode(entity)
    else:
        body = encode(entity)
    correlation_id = draw(st.integers(-(2**31), 2**31 - 1), label="correlation_id")
    client_id = draw(st.none() | st.text(max_size=10), label="client_id")
    return Case(schema, entity, body, correlation_id, client_id)


@st.composite
def mutated(draw: st.DrawFn, data: bytes) -> bytes:
    """`data` with a few byte flips, overwrites with edge values, inserts and deletes."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "edge", "insert", "delete", "truncate"]))
        position = draw(st.integers(0, max(len(out) - 1, 0)))
        if kind == "flip" and out:
            out[position] ^= draw(st.integers(1, 255))
        elif kind == "edge" and out:
            edge = draw(st.sampled_from([b"\x00", b"\xff", b"\x7f", b"\x80", b"\xff\xff\xff\xff"]))
            out[position : position + len(edge)] = edge
        elif kind == "insert":
            out[position:position] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete" and out:
            del out[position : position + draw(st.integers(1, 4))]
        elif kind == "truncate":
            del out[position:]
    return bytes(out)


# -- decode_request: valid input ---------------------------------------------------------


@FUZZ
@given(case=valid_cases())
def test_valid_frame_decodes(case: Case) -> None:
    request = decode_request(case.frame())
    header = request.header
    assert (header.api_key, header.api_version, header.correlation_id, header.client_id) == (
        case.schema.__api_key__,
        case.schema.__version__,
        case.correlation_id,
        case.client_id,
    )
    assert request.body == case.entity


@FUZZ
@given(case=valid_cases(unknown_tags=True), header_tag=st.binary(max_size=6))
def test_unknown_tags_are_skipped_in_header_and_body(case: Case, header_tag: bytes) -> None:
    # Unknown tag 99 in the header's own tagged-field section too.
    header_tags = b"\x01\x63" + bytes([len(header_tag)]) + header_tag
    assert decode_request(case.frame(header_tags)).body == case.entity


# -- decode_request: hostile input -------------------------------------------------------


@needs_fork
@FUZZ
@given(frame=st.binary(max_size=64))
def test_random_bytes(frame: bytes) -> None:
    assert_only_allowed(frame)


@needs_fork
@FUZZ
@given(schema=st.sampled_from(REQUEST_SCHEMAS), body=st.binary(max_size=96))
def test_random_body_after_valid_header(schema: type, body: bytes) -> None:
    assert_only_allowed(frame_for(schema, body))


@needs_fork
@settings(FUZZ, max_examples=120 * _SCALE)
@given(data=st.data())
def test_mutated_valid_frames(data: st.DataObject) -> None:
    case = data.draw(valid_cases(unknown_tags=data.draw(st.booleans(), label="unknown_tags")))
    assert_only_allowed(data.draw(mutated(case.frame()), label="mutated"))


@needs_fork
@FUZZ
@given(data=st.data())
def test_truncated_frames(data: st.DataObject) -> None:
    case = data.draw(valid_cases(unknown_tags=data.draw(st.booleans(), label="unknown_tags")))
    frame = case.frame()
    length = data.draw(st.integers(0, len(frame) - 1), label="length")
    assert assert_only_allowed(frame[:length]) != "ok"  # a strict prefix never decodes


@pytest.mark.parametrize("schema", REQUEST_SCHEMAS[:4], ids=schema_id)
def test_truncated_header(schema: type) -> None:
    frame = frame_for(schema, b"", client_id="abcdef")
    for length in range(16):  # fixed fields, then the client id
        with pytest.raises(ProtocolError):
            decode_request(frame[:length])


@pytest.mark.parametrize(("api_key", "api_version"), [(-1, 0), (18, 99), (999, 0), (0, 0)])
def test_unknown_api_key_or_version(api_key: int, api_version: int) -> None:
    frame = struct.pack(">hhih", api_key, api_version, 1, -1)
    with pytest.raises(UnsupportedVersion):
        decode_request(frame)


# Found by the fuzzers above.

JOIN_GROUP_V9 = next(s for s in REQUEST_SCHEMAS if schema_id(s) == "JoinGroupRequestv9")


def _join_group_v9_body(protocols: bytes) -> bytes:
    return b"\x02g" + b"\x00\x00\x00\x01" * 2 + b"\x01\x00\x01" + protocols + b"\x00\x00"


@needs_fork
# kio 0.6.5's native reader pre-allocates a declared array length and aborts the process
# on a huge one; decode_request therefore reads untrusted frames with the lenient reader.
@pytest.mark.parametrize("length", [b"\xff\xff\xff\xff\x7f", b"\x80\x80\x80\x80\x10"])
def test_huge_array_length_does_not_abort_the_process(length: bytes) -> None:
    frame = frame_for(JOIN_GROUP_V9, _join_group_v9_body(length))
    assert assert_only_allowed(frame) in ("allowed: ProtocolError", "allowed: ArrayLengthError")


def test_malformed_body_after_unknown_tag_is_a_protocol_error() -> None:
    # Unknown tag 5 sends decode_body to the lenient reader, then the tagged-field count
    # promises a second tag that is not there.
    body = _join_group_v9_body(b"\x01")[:-1] + b"\x02\x05\x00"
    with pytest.raises(ProtocolError):
        decode_request(frame_for(JOIN_GROUP_V9, body))


# -- split_batches -------------------------------------------------------------------------


def build_batch(
    records: bytes,
    records_count: int = 1,
    attributes: int = 0,
    base_offset: int = 0,
    magic: int = 2,
    producer_id: int = -1,
    base_sequence: int = -1,
) -> bytes:
    """A v2 RecordBatch around opaque `records` (the validator never parses them)."""
    after_crc = (
        struct.pack(
            ">hiqqqhii",
            attributes,
            records_count - 1,  # last_offset_delta
            1_700_000_000_000,  # base_timestamp
            1_700_000_000_000,  # max_timestamp
            producer_id,
            0,  # producer_epoch
            base_sequence,
            records_count,
        )
        + records
    )
    batch_length = 4 + 1 + 4 + len(after_crc)  # epoch, magic, crc, rest
    head = struct.pack(">qiib", base_offset, batch_length, -1, magic)
    return head + struct.pack(">I", crc32c.crc32c(after_crc)) + after_crc


batches_st = st.lists(
    st.builds(
        build_batch,
        records=st.binary(max_size=40),
        records_count=st.integers(1, 5),
        attributes=st.integers(0, 4) | st.sampled_from([0x10, 0x20, 0x14]),
        base_offset=st.integers(-(2**63), 2**63 - 1),
    ),
    min_size=1,
    max_size=4,
)


def expect_kafka_error(data: bytes, batch_bytes_max: int, *codes: ErrorCode) -> None:
    with pytest.raises(KafkaError) as caught:
        split_batches(data, batch_bytes_max)
    assert caught.value.code in codes, caught.value


@BATCH_FUZZ
@given(batches=batches_st)
def test_valid_batches_are_returned_intact(batches: list[bytes]) -> None:
    data = b"".join(batches)
    result = split_batches(data, max(len(b) for b in batches))
    assert [bytes(view) for _, view in result] == batches
    for (header, _), batch in zip(result, batches, strict=True):
        assert header.magic == 2 and header.total_bytes == len(batch)


@BATCH_FUZZ
@given(batches=batches_st, data=st.data())
def test_flipped_byte_in_crc_range_is_corrupt(batches: list[bytes], data: st.DataObject) -> None:
    index = data.draw(st.integers(0, len(batches) - 1), label="batch")
    # 17..20 is the CRC itself, 21.. is what it covers.
    position = data.draw(st.integers(17, len(batches[index]) - 1), label="position")
    flipped = bytearray(batches[index])
    flipped[position] ^= data.draw(st.integers(1, 255), label="mask")
    corrupted = [*batches[:index], bytes(flipped), *batches[index + 1 :]]
    expect_kafka_error(b"".join(corrupted), 2**31, ErrorCode.corrupt_message)


@BATCH_FUZZ
@given(batches=batches_st, data=st.data())
def test_epoch_and_base_offset_are_outside_the_crc(
    batches: list[bytes], data: st.DataObject
) -> None:
    # The broker stamps these in place, so changing them must keep the batch valid.
    batch = bytearray(batches[0])
    position = data.draw(st.sampled_from([*range(8), *range(12, 16)]), label="position")
    batch[position] ^= data.draw(st.integers(1, 255), label="mask")
    assert len(split_batches(bytes(batch), 2**31)) == 1


@BATCH_FUZZ
@given(batch=batches_st.map(lambda b: b[0]), magic=st.integers(-128, 127).filter(lambda m: m != 2))
def test_bad_magic(batch: bytes, magic: int) -> None:
    data = batch[:16] + struct.pack(">b", magic) + batch[17:]
    if magic in (0, 1):  # legacy formats: records.py and Kafka differ on the code
        expect_kafka_error(
            data,
            2**31,
            ErrorCode.unsupported_for_message_format,
            ErrorCode.invalid_record,
            ErrorCode.corrupt_message,
        )
    else:
        expect_kafka_error(data, 2**31, ErrorCode.corrupt_message)


@BATCH_FUZZ
@given(batches=batches_st, data=st.data())
def test_oversize_batch(batches: list[bytes], data: st.DataObject) -> None:
    largest = max(len(b) for b in batches)
    expect_kafka_error(
        b"".join(batches),
        data.draw(st.integers(0, largest - 1)),
        ErrorCode.message_too_large,
    )


@BATCH_FUZZ
@given(batches=batches_st, data=st.data())
def test_truncated_batches(batches: list[bytes], data: st.DataObject) -> None:
    whole = b"".join(batches)
    boundaries = {sum(len(b) for b in batches[:i]) for i in range(len(batches) + 1)}
    length = data.draw(st.integers(1, len(whole) - 1).filter(lambda n: n not in boundaries))
    expect_kafka_error(whole[:length], 2**31, ErrorCode.invalid_record)


def test_empty_record_set() -> None:
    expect_kafka_error(b"", 1024, ErrorCode.invalid_record)


def test_unknown_compression_and_count_mismatch() -> None:
    expect_kafka_error(
        build_batch(b"x", attributes=5), 1024, ErrorCode.unsupported_compression_type
    )
    bad_count = bytearray(build_batch(b"x", records_count=3))
    struct.pack_into(">i", bad_count, 57, 2)  # records_count no longer last delta + 1
    struct.pack_into(">I", bad_count, 17, crc32c.crc32c(bytes(bad_count[21:])))
    expect_kafka_error(bytes(bad_count), 1024, ErrorCode.invalid_record)


def test_header_is_sixty_one_bytes() -> None:
    assert len(build_batch(b"")) == BATCH_HEADER_BYTES


@settings(BATCH_FUZZ, max_examples=200 * _SCALE)
@given(data=st.binary(max_size=200), batch_bytes_max=st.integers(0, 2**31))
@example(data=b"\x00" * 61, batch_bytes_max=1024)
def test_arbitrary_bytes_raise_only_kafka_errors(data: bytes, batch_bytes_max: int) -> None:
    with contextlib.suppress(KafkaError):
        split_batches(data, batch_bytes_max)


@BATCH_FUZZ
@given(batches=batches_st, data=st.data())
def test_mutated_batches_raise_only_kafka_errors(batches: list[bytes], data: st.DataObject) -> None:
    try:
        result = split_batches(data.draw(mutated(b"".join(batches))), 2**31)
    except KafkaError:
        return
    for header, view in result:
        assert header.magic == 2 and header.total_bytes == len(view)


@BATCH_FUZZ
@given(
    fields=st.tuples(
        st.integers(-(2**63), 2**63 - 1),  # base_offset
        st.integers(-(2**31), 2**31 - 1) | st.integers(0, 120),  # batch_length
        st.integers(-(2**31), 2**31 - 1),  # partition_leader_epoch
        st.just(2) | st.integers(-128, 127),  # magic
        st.integers(0, 2**32 - 1),  # crc (replaced by the right one when fix_crc)
        st.integers(-(2**15), 2**15 - 1),  # attributes
        st.integers(-(2**31), 2**31 - 1) | st.integers(-2, 5),  # last_offset_delta
        st.integers(-(2**63), 2**63 - 1),  # base_timestamp
        st.integers(-(2**63), 2**63 - 1),  # max_timestamp
        st.integers(-(2**63), 2**63 - 1),  # producer_id
        st.integers(-(2**15), 2**15 - 1),  # producer_epoch
        st.integers(-(2**31), 2**31 - 1),  # base_sequence
        st.integers(-(2**31), 2**31 - 1) | st.integers(-2, 6),  # records_count
    ),
    records=st.binary(max_size=64),
    fix_crc=st.booleans(),
    batch_bytes_max=st.integers(0, 2**31),
)
def test_random_header_fields_raise_only_kafka_errors(
    fields: tuple[int, ...], records: bytes, fix_crc: bool, batch_bytes_max: int
) -> None:
    data = bytearray(struct.pack(">qiibIhiqqqhii", *fields) + records)
    if fix_crc:  # get past the CRC check to reach the compression and count checks
        struct.pack_into(">I", data, 17, crc32c.crc32c(bytes(data[21:])))
    try:
        result = split_batches(bytes(data), batch_bytes_max)
    except KafkaError:
        return
    for header, view in result:
        assert header.magic == 2 and header.total_bytes == len(view) <= batch_bytes_max
