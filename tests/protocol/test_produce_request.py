"""The hand-written Produce reader makes what the lenient reader makes, and leaves every
frame it does not read exactly so to the lenient reader (None): truncated, tagged,
mutated."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contextplane.limits import STRING_BYTES_MAX
from contextplane.protocol.codec import request_schema
from contextplane.protocol.lenient import LenientDecodeError, read_entity_lenient
from contextplane.protocol.produce_request import read_produce

from .support import TagInjectingEncoder, encode, extra_tags_for, schema_id

PRODUCE_SCHEMAS = [request_schema(0, version) for version in range(3, 14)]
SETTINGS = settings(
    max_examples=25,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.mark.parametrize("schema", PRODUCE_SCHEMAS, ids=schema_id)
@SETTINGS
@given(data=st.data())
def test_reads_what_the_lenient_reader_reads(schema: type, data: st.DataObject) -> None:
    entity = data.draw(st.from_type(schema), label="entity")
    encoded = encode(entity)
    assert read_produce(schema, encoded, 0) == entity
    padding = data.draw(st.binary(max_size=12), label="padding")
    framed = padding + encoded + b"\x00trailing"  # bytes after the body are ignored
    assert read_produce(schema, framed, len(padding)) == entity
    assert read_entity_lenient(schema, framed, len(padding))[0] == entity
    # Every strict prefix is left to the lenient reader, which refuses it.
    for length in range(len(encoded)):
        assert read_produce(schema, encoded[:length], 0) is None


@pytest.mark.parametrize("schema", [s for s in PRODUCE_SCHEMAS if s.__flexible__], ids=schema_id)
@settings(SETTINGS, max_examples=10)
@given(data=st.data())
def test_tagged_fields_are_left_to_the_lenient_reader(schema: type, data: st.DataObject) -> None:
    entity = data.draw(st.from_type(schema), label="entity")
    nested = data.draw(st.booleans(), label="nested")
    extra = data.draw(extra_tags_for(schema, nested), label="extra")
    encoder = TagInjectingEncoder(lambda entity_type: extra.get(entity_type, []))
    encoded = encoder.encode(entity)
    assert read_produce(schema, encoded, 0) is None
    assert read_entity_lenient(schema, encoded)[0] == entity


@settings(SETTINGS, max_examples=300)
@given(data=st.data())
def test_mutated_frames_are_read_alike_or_left_alone(data: st.DataObject) -> None:
    schema = data.draw(st.sampled_from(PRODUCE_SCHEMAS), label="schema")
    entity = data.draw(st.from_type(schema), label="entity")
    encoded = bytearray(encode(entity))
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        position = data.draw(st.integers(0, len(encoded) - 1), label="position")
        encoded[position] = data.draw(
            st.sampled_from([0x00, 0x01, 0x7F, 0x80, 0xFF]) | st.integers(0, 255)
        )
    fast = read_produce(schema, bytes(encoded), 0)
    if fast is None:
        return
    # Whatever it reads, the lenient reader reads the same (it never accepts more).
    try:
        lenient = read_entity_lenient(schema, bytes(encoded))[0]
    except LenientDecodeError:
        pytest.fail("read by hand but refused by the lenient reader")
    assert fast == lenient


def uvarint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def test_a_transactional_id_past_kafkas_bound_is_left_alone() -> None:
    schema = request_schema(0, 9)
    length = STRING_BYTES_MAX + 1
    acks, timeout, no_topics, no_tags = b"\xff\xff", b"\x00\x00\x75\x30", b"\x01", b"\x00"
    body = uvarint(length + 1) + b"x" * length + acks + timeout + no_topics + no_tags
    assert read_produce(schema, body, 0) is None
    with pytest.raises(LenientDecodeError, match="invalid length"):
        read_entity_lenient(schema, body)
