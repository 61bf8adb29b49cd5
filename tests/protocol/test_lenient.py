"""The lenient reader agrees with kio's native reader and skips unknown tagged fields."""

from __future__ import annotations

import datetime
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kio.index import load_request_schema, load_response_schema
from kio.schema.index import api_key_map, schema_name_map
from kio.serial import entity_reader
from kio.serial.errors import DecodeError
from kio.static.constants import EntityType

from contextplane.limits import STRING_BYTES_MAX
from contextplane.protocol.lenient import (
    ArrayLengthError,
    LenientDecodeError,
    _entity_plan,
    read_entity_lenient,
)

from .support import (
    REQUEST_SCHEMAS,
    TagInjectingEncoder,
    encode,
    extra_tags_for,
    schema_id,
)

SETTINGS = settings(
    max_examples=15,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def native_read(schema: type, data: bytes, position: int = 0) -> tuple[Any, int]:
    entity, size = entity_reader(schema)(data, position)
    return entity, position + size


def prefix_lengths(length: int, limit: int = 48) -> list[int]:
    """Every strict prefix of a short encoding, else both ends and an even spread."""
    if length <= limit:
        return list(range(length))
    spread = {length * i // limit for i in range(limit)}
    return sorted(spread | {0, 1, 2, length - 2, length - 1})


@pytest.mark.parametrize("schema", REQUEST_SCHEMAS, ids=schema_id)
@SETTINGS
@given(data=st.data())
def test_matches_native_reader(schema: type, data: st.DataObject) -> None:
    entity = data.draw(st.from_type(schema), label="entity")
    encoded = encode(entity)
    expected = native_read(schema, encoded)
    assert expected == (entity, len(encoded))
    assert read_entity_lenient(schema, encoded) == expected
    # Bodies sit after the request header inside a frame: absolute positions hold.
    padding = data.draw(st.binary(max_size=12), label="padding")
    framed = padding + encoded + b"\x00trailing"
    assert read_entity_lenient(schema, framed, len(padding)) == (
        entity,
        len(padding) + len(encoded),
    )
    # Past 32 KiB of input the string readers check lengths (a plan of their own).
    long_tail = encoded + bytes(STRING_BYTES_MAX + 1)
    assert read_entity_lenient(schema, long_tail) == expected


@pytest.mark.parametrize("schema", [s for s in REQUEST_SCHEMAS if s.__flexible__], ids=schema_id)
@settings(SETTINGS, max_examples=20)
@given(data=st.data())
def test_skips_unknown_tags(schema: type, data: st.DataObject) -> None:
    entity = data.draw(st.from_type(schema), label="entity")
    nested = data.draw(st.booleans(), label="nested")
    extra = data.draw(extra_tags_for(schema, nested), label="extra")
    encoder = TagInjectingEncoder(lambda entity_type: extra.get(entity_type, []))
    encoded = encoder.encode(entity)
    assert encoder.injected >= 1  # the top-level section always gets some

    assert read_entity_lenient(schema, encoded) == (entity, len(encoded))
    with pytest.raises(KeyError, match="Unknown tagged field tag"):
        entity_reader(schema)(encoded, 0)

    # Truncation anywhere, unknown tags included, is a ValueError and never a hang.
    for length in prefix_lengths(len(encoded), limit=24):
        with pytest.raises(LenientDecodeError):
            read_entity_lenient(schema, encoded[:length])


@pytest.mark.parametrize("schema", REQUEST_SCHEMAS, ids=schema_id)
@settings(SETTINGS, max_examples=10)
@given(data=st.data())
def test_every_strict_prefix_raises(schema: type, data: st.DataObject) -> None:
    entity = data.draw(st.from_type(schema), label="entity")
    encoded = encode(entity)
    for length in prefix_lengths(len(encoded)):
        with pytest.raises(LenientDecodeError):
            read_entity_lenient(schema, encoded[:length])


@settings(SETTINGS, max_examples=300)
@given(data=st.data())
def test_mutated_input_raises_only_lenient_errors(data: st.DataObject) -> None:
    schema = data.draw(st.sampled_from(REQUEST_SCHEMAS), label="schema")
    entity = data.draw(st.from_type(schema), label="entity")
    encoded = bytearray(encode(entity) or b"\x00")
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        position = data.draw(st.integers(0, len(encoded) - 1), label="position")
        encoded[position] = data.draw(
            st.sampled_from([0x00, 0x01, 0x7F, 0x80, 0xFF]) | st.integers(0, 255)
        )
    try:
        result = read_entity_lenient(schema, bytes(encoded))
    except LenientDecodeError:
        return
    # Lenient accepted it, so every array length fits: safe to ask the native reader,
    # which may only disagree by refusing an unknown tag or a null tagged string.
    try:
        expected = native_read(schema, bytes(encoded))
    except (KeyError, DecodeError):
        return
    assert result == expected


@pytest.mark.parametrize("schema", REQUEST_SCHEMAS, ids=schema_id)
@settings(SETTINGS, max_examples=5)
@given(data=st.data())
def test_encoder_without_extra_tags_matches_kio(schema: type, data: st.DataObject) -> None:
    """The test-side encoder is only trustworthy if it is kio's format when not injecting."""
    entity = data.draw(st.from_type(schema))
    assert TagInjectingEncoder(lambda _: []).encode(entity) == encode(entity)


def _all_payload_schemas() -> list[type]:
    loaders = {EntityType.request: load_request_schema, EntityType.response: load_response_schema}
    schemas = []
    for api_key, name in api_key_map.items():
        for version, entities in schema_name_map[name].items():
            for entity_type, loader in loaders.items():
                if entity_type in entities:
                    schemas.append(loader(api_key, version))
    return schemas


ALL_PAYLOAD_SCHEMAS = _all_payload_schemas()


def test_plan_builds_for_every_kio_schema() -> None:
    assert len(ALL_PAYLOAD_SCHEMAS) > 500
    for schema in ALL_PAYLOAD_SCHEMAS:
        for bound_strings in (False, True):
            assert _entity_plan(schema, False, bound_strings).min_size >= 0


@settings(
    max_examples=300,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_matches_native_reader_on_any_schema(data: st.DataObject) -> None:
    """A sampled sweep over every request and response schema kio knows (responses bring
    the types requests lack: datetimes, float64, nullable structs, error codes)."""
    schema = data.draw(st.sampled_from(ALL_PAYLOAD_SCHEMAS))
    entity = data.draw(st.from_type(schema))
    encoded = encode(entity)
    assert read_entity_lenient(schema, encoded) == native_read(schema, encoded)


# Hand-built inputs for the malformed cases the native reader treats differently.

FETCH_V16 = load_request_schema(1, 16)
JOIN_GROUP_V9 = load_request_schema(11, 9)
PRODUCE_V3 = load_request_schema(0, 3)


def _join_group_v9(protocols: bytes) -> bytes:
    return (
        b"\x02g"  # group_id "g"
        + b"\x00\x00\x00\x01" * 2  # session and rebalance timeouts
        + b"\x01"  # member_id ""
        + b"\x00"  # group_instance_id null
        + b"\x01"  # protocol_type ""
        + protocols
        + b"\x00"  # reason null
        + b"\x00"  # no tagged fields
    )


def test_join_group_sample_reads() -> None:
    body = _join_group_v9(b"\x01")
    entity, end = read_entity_lenient(JOIN_GROUP_V9, body)
    assert end == len(body)
    assert entity == native_read(JOIN_GROUP_V9, body)[0]
    assert entity.group_id == "g" and entity.protocols == ()


@pytest.mark.parametrize(
    "length", [b"\x80\x80\x80\x80\x0f", b"\xff\xff\xff\xff\x07", b"\xff\xff\xff\x7f", b"\x05"]
)
def test_array_longer_than_the_buffer_is_rejected_before_allocating(length: bytes) -> None:
    # kio's native reader pre-allocates the declared length: the first two abort the
    # process (see test_decoder_fuzz). Lenient refuses without allocating.
    with pytest.raises(ArrayLengthError, match="cannot fit"):
        read_entity_lenient(JOIN_GROUP_V9, _join_group_v9(length))


def test_legacy_array_length_is_checked() -> None:
    body = b"\xff\xff" + b"\x00\x01" + b"\x00\x00\x00\x10" + b"\x7f\xff\xff\xff"
    with pytest.raises(ArrayLengthError):
        read_entity_lenient(PRODUCE_V3, body)
    with pytest.raises(LenientDecodeError, match="negative array length"):
        read_entity_lenient(PRODUCE_V3, body[:-4] + b"\xff\xff\xff\xfe")


def test_null_for_non_nullable_array_is_rejected() -> None:
    with pytest.raises(LenientDecodeError, match="non-nullable array"):
        read_entity_lenient(JOIN_GROUP_V9, _join_group_v9(b"\x00"))


def _fetch_v16(tags: bytes) -> bytes:
    entity = FETCH_V16(
        max_wait=datetime.timedelta(0), min_bytes=1, topics=(), forgotten_topics_data=()
    )
    body = encode(entity)
    assert body.endswith(b"\x00")
    return body[:-1] + tags


def test_known_tag_is_decoded_among_unknown_ones() -> None:
    # tag 0 (cluster_id "ab") between unknown tags 7 and 0x4000.
    tags = b"\x03" + b"\x00\x03\x03ab" + b"\x07\x02\xaa\xbb" + b"\x80\x80\x01\x00"
    entity, end = read_entity_lenient(FETCH_V16, _fetch_v16(tags))
    assert entity.cluster_id == "ab"
    assert end == len(_fetch_v16(tags))
    with pytest.raises(KeyError):
        entity_reader(FETCH_V16)(_fetch_v16(tags), 0)


def test_tagged_nullable_string_may_be_null() -> None:
    entity, _ = read_entity_lenient(FETCH_V16, _fetch_v16(b"\x01\x00\x01\x00"))
    assert entity.cluster_id is None


@pytest.mark.parametrize(
    ("tags", "message"),
    [
        (b"\x01\x00\x04\x03abX", "declares 4 bytes but its value takes 3"),
        (b"\x01\x00\x02\x03ab", "declares 2 bytes but its value takes 3"),
        (b"\x01\x09\x05ab", "tag 9 declares 5 bytes, only 2 remain"),
        (b"\x05\x09\x00", "5 tagged fields cannot fit"),
        (b"\x81\x80\x80\x80\x0f", "tagged fields cannot fit"),
        (b"\x01\x80\x80\x80\x80\x80\x00", "Varint is too long"),
    ],
)
def test_malformed_tag_sections(tags: bytes, message: str) -> None:
    with pytest.raises(LenientDecodeError, match=message):
        read_entity_lenient(FETCH_V16, _fetch_v16(tags))


DESCRIBE_TOPIC_PARTITIONS_V0 = load_request_schema(75, 0)


@pytest.mark.parametrize(
    ("cursor", "expected"),
    [
        (b"\xff", None),
        (b"\x01\x02t\x00\x00\x00\x03\x00", ("t", 3)),
        (b"\x00\x02t\x00\x00\x00\x03\x00", LenientDecodeError),
        (b"\x7f\x02t\x00\x00\x00\x03\x00", LenientDecodeError),
    ],
)
def test_nullable_struct_marker(cursor: bytes, expected: Any) -> None:
    body = b"\x01" + b"\x00\x00\x00\x10" + cursor + b"\x00"
    if expected is LenientDecodeError:
        # Native reads any marker but -1 as present; only -1 and 1 are valid (KIP-893).
        with pytest.raises(LenientDecodeError, match="marker"):
            read_entity_lenient(DESCRIBE_TOPIC_PARTITIONS_V0, body)
        return
    entity, end = read_entity_lenient(DESCRIBE_TOPIC_PARTITIONS_V0, body)
    assert (entity, end) == native_read(DESCRIBE_TOPIC_PARTITIONS_V0, body)
    if expected is None:
        assert entity.cursor is None
    else:
        assert (entity.cursor.topic_name, entity.cursor.partition_index) == expected


def test_error_messages_locate_the_failure() -> None:
    body = _join_group_v9(b"\x02\x0bab")  # one protocol whose name claims 10 bytes
    with pytest.raises(LenientDecodeError) as caught:
        read_entity_lenient(JOIN_GROUP_V9, body)
    assert str(caught.value).startswith("JoinGroupRequestProtocol.name at byte 14: ")


def test_accepts_bytearray_and_memoryview() -> None:
    body = _join_group_v9(b"\x01")
    expected = read_entity_lenient(JOIN_GROUP_V9, body)
    assert read_entity_lenient(JOIN_GROUP_V9, bytearray(body)) == expected
    assert read_entity_lenient(JOIN_GROUP_V9, memoryview(bytearray(body))) == expected


@pytest.mark.parametrize("position", [-1, 100])
def test_position_outside_buffer(position: int) -> None:
    with pytest.raises(LenientDecodeError, match="outside"):
        read_entity_lenient(JOIN_GROUP_V9, b"\x00" * 10, position)


def test_zero_uuid_reads_as_none_like_native() -> None:
    schema = load_request_schema(1, 13)
    topic = schema.__dataclass_fields__["topics"].type.__args__[0]
    entity = schema(
        max_wait=datetime.timedelta(milliseconds=5),
        min_bytes=1,
        topics=(topic(topic_id=uuid.uuid4(), partitions=()), topic(topic_id=None, partitions=())),
        forgotten_topics_data=(),
    )
    encoded = encode(entity)
    assert encoded.count(bytes(16)) == 1  # None is written as the zero UUID
    assert read_entity_lenient(schema, encoded) == native_read(schema, encoded)
    assert read_entity_lenient(schema, encoded)[0] == entity
