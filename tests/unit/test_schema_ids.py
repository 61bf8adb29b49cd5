"""The schema id a key or value carries (Confluent's wire format), the subject each
strategy names, the record name a schema gives the record strategies, and the topic
configs that turn validation on."""

from __future__ import annotations

import json

import pytest

from conformance.wire import Rec, _varint, encode_batch
from contextplane.broker.configs import checked_topic_config
from contextplane.broker.schema_catalog import record_name_of
from contextplane.broker.schema_ids import (
    GUID_HEADERS,
    NO_SCHEMA_ID,
    Carried,
    carried,
    message_path,
)
from contextplane.broker.schema_validation import Rule, rule_for
from contextplane.broker.subject_strategies import (
    DEFAULT_STRATEGY,
    Strategy,
    parse_strategy,
    subject_for,
)
from contextplane.errors import KafkaError
from contextplane.protocol.decompress import CHUNK_BYTES
from contextplane.protocol.record_codec import header_names, read_records, record_heads
from contextplane.services.schema_registry.formats import parse


def test_the_prefix_carries_a_big_endian_id() -> None:
    assert carried(b"\x00\x00\x00\x01\x02avro", False) == Carried(258)
    assert carried(b"\x00\xff\xff\xff\xff", False) == Carried(2**32 - 1)


@pytest.mark.parametrize(
    "payload",
    [b"", b"\x00", b"\x00\x00\x00\x01", b"\x01\x00\x00\x00\x01", b"plain text", b"{}"],
)
def test_a_payload_without_the_prefix_carries_no_id(payload: bytes) -> None:
    assert carried(payload, False) == Carried(None, problem=NO_SCHEMA_ID)


@pytest.mark.parametrize("compression", ["none", "zstd"])
def test_guid_headers_are_found_by_name(compression: str) -> None:
    guid = b"\x01" + bytes(16)
    records = [
        Rec(b"avro", headers=[("__value_schema_id", guid)]),
        Rec(b"avro", key=b"k" * 300, headers=[("other", b"x"), ("__key_schema_id", guid)]),
        Rec(b"x" * 3 * CHUNK_BYTES, headers=[("__value_schema_id", None), ("h" * 500, b"y")]),
        Rec(b"not asked", headers=[("__value_schema_id", guid)]),
        Rec(None, headers=[("__value_schema_i", guid), ("__value_schema_idx", guid)]),
    ]
    batch = encode_batch(records, compression=compression)
    found = header_names(batch, 64 * CHUNK_BYTES, {0, 1, 2, 4}, GUID_HEADERS)
    assert found == {0: {b"__value_schema_id"}, 1: {b"__key_schema_id"}, 2: {b"__value_schema_id"}}
    assert header_names(batch, 64 * CHUNK_BYTES, set(), GUID_HEADERS) == {}


def test_protobuf_message_paths() -> None:
    prefix = b"\x00\x00\x00\x00\x07"
    assert carried(prefix + b"\x00rest", True) == Carried(7, (0,))
    path = prefix + _varint(2) + _varint(1) + _varint(3)
    assert carried(path, True) == Carried(7, (1, 3))
    assert carried(path, False) == Carried(7)
    assert message_path(prefix + _varint(3) + _varint(1), 5) is None  # cut short
    assert message_path(prefix + _varint(-1), 5) is None
    assert message_path(prefix + _varint(33) + bytes(33), 5) is None  # past the bound
    assert message_path(prefix + b"\xff\xff\xff\xff\xff\xff", 5) is None  # varint too long


@pytest.mark.parametrize(
    ("value", "strategy"),
    [
        ("io.confluent.kafka.serializers.subject.TopicNameStrategy", Strategy.TOPIC),
        ("io.confluent.kafka.serializers.subject.RecordNameStrategy", Strategy.RECORD),
        ("io.confluent.kafka.serializers.subject.TopicRecordNameStrategy", Strategy.TOPIC_RECORD),
        ("TopicRecordNameStrategy", Strategy.TOPIC_RECORD),
        ("RecordNameStrategy", Strategy.RECORD),
        ("io.confluent.kafka.serializers.subject.Nope", None),
        ("topicnamestrategy", None),
        ("", None),
    ],
)
def test_strategy_names(value: str, strategy: Strategy | None) -> None:
    assert parse_strategy(value) is strategy


def test_the_subject_each_strategy_names() -> None:
    assert subject_for(Strategy.TOPIC, "orders", False, None) == "orders-value"
    assert subject_for(Strategy.TOPIC, "orders", True, "ignored") == "orders-key"
    assert subject_for(Strategy.RECORD, "orders", False, "shop.Order") == "shop.Order"
    assert subject_for(Strategy.RECORD, "orders", True, "shop.Id") == "shop.Id"
    assert subject_for(Strategy.TOPIC_RECORD, "orders", False, "shop.Order") == "orders-shop.Order"
    with pytest.raises(ValueError, match="record name"):
        subject_for(Strategy.RECORD, "orders", False, None)


def test_topic_configs_are_checked() -> None:
    assert checked_topic_config("confluent.value.schema.validation", " TRUE ") == "TRUE"
    assert checked_topic_config("confluent.key.schema.validation", "false") == "false"
    assert checked_topic_config("confluent.value.subject.name.strategy", DEFAULT_STRATEGY)
    for name, value in [
        ("confluent.value.schema.validation", "yes"),
        ("confluent.key.subject.name.strategy", "io.confluent.Other"),
    ]:
        with pytest.raises(KafkaError, match=f"Invalid value {value} for configuration {name}"):
            checked_topic_config(name, value)


def test_rules_from_topic_configs() -> None:
    assert rule_for({}) is None
    assert rule_for({"confluent.value.schema.validation": "false"}) is None
    assert rule_for({"confluent.value.schema.validation": "True"}) == Rule(None, Strategy.TOPIC)
    assert rule_for(
        {
            "confluent.key.schema.validation": "true",
            "confluent.key.subject.name.strategy": "RecordNameStrategy",
            "confluent.value.subject.name.strategy": "TopicRecordNameStrategy",
        }
    ) == Rule(Strategy.RECORD, None)


def test_record_names_of_each_schema_type() -> None:
    record = {"type": "record", "name": "Order", "namespace": "shop", "fields": []}
    assert record_name_of(parse("AVRO", json.dumps(record)), None) == "shop.Order"
    enum = {"type": "enum", "name": "Colour", "symbols": ["RED"]}
    assert record_name_of(parse("AVRO", json.dumps(enum)), None) == "Colour"
    assert record_name_of(parse("AVRO", '"string"'), None) == "string"
    assert record_name_of(parse("AVRO", '{"type": "array", "items": "int"}'), None) == "array"
    assert record_name_of(parse("AVRO", '["null", "int"]'), None) == "union"

    titled = {"title": "Customer", "type": "object"}
    assert record_name_of(parse("JSON", json.dumps(titled)), None) == "Customer"
    assert record_name_of(parse("JSON", '{"type": "object"}'), None) is None

    proto = parse(
        "PROTOBUF",
        'syntax = "proto3"; package shop; '
        "message Order { message Line { string sku = 1; } Line line = 1; } "
        "message Refund { string id = 1; }",
    )
    assert record_name_of(proto, None) is None  # the message indexes did not read
    assert record_name_of(proto, (0,)) == "shop.Order"
    assert record_name_of(proto, (1,)) == "shop.Refund"
    assert record_name_of(proto, (0, 0)) == "shop.Order.Line"
    assert record_name_of(proto, (2,)) is None
    unpackaged = parse("PROTOBUF", 'syntax = "proto3"; message Ping { int32 n = 1; }')
    assert record_name_of(unpackaged, (0,)) == "Ping"


@pytest.mark.parametrize("compression", ["none", "gzip", "lz4", "zstd", "snappy"])
def test_record_heads_agree_with_whole_records(compression: str) -> None:
    records = [
        Rec(b"\x00\x00\x00\x00\x05" + b"v" * 300, key=b"k" * 200),
        Rec(None, key=b"tombstone"),
        Rec(b"ab"),
        Rec(b"", key=b""),
        Rec(b"x" * 70_000, headers=[("h", b"1"), ("__value_schema_id", None)]),
    ]
    batch = encode_batch(records, compression=compression)
    for head_bytes in (5, 166):
        key_table, value_table = record_heads(batch, 1 << 20, head_bytes)
        keys = [None if c < 0 else key_table.distinct[c] for c in key_table.codes()]
        values = [None if c < 0 else value_table.distinct[c] for c in value_table.codes()]
        _, whole = read_records(batch, 1 << 20)
        assert keys == [None if r.key is None else r.key[:head_bytes] for r in whole]
        assert values == [None if r.value is None else r.value[:head_bytes] for r in whole]
        assert values[0] == b"\x00\x00\x00\x00\x05" + b"v" * (head_bytes - 5)


@pytest.mark.parametrize("compression", ["gzip", "lz4", "zstd", "snappy"])
def test_records_larger_than_a_decompressed_chunk_are_read_in_pieces(compression: str) -> None:
    big = 3 * CHUNK_BYTES
    head = b"\x00\x00\x00\x00\x09"
    records = [
        Rec(head + b"a" * 100, key=b"k"),
        Rec(head + b"b" * big, key=b"K" * big, headers=[("h", b"x" * big)]),
        *[Rec(head + bytes([n % 251]) * 1000) for n in range(2000)],  # straddle chunks
        Rec(None, key=b"k" * big),
        Rec(b"\x01" + b"c" * big),
        Rec(head),
    ]
    batch = encode_batch(records, compression=compression)
    key_table, value_table = record_heads(batch, 64 * CHUNK_BYTES, 5)
    _, whole = read_records(batch, 64 * CHUNK_BYTES)
    keys = [None if c < 0 else key_table.distinct[c] for c in key_table.codes()]
    values = [None if c < 0 else value_table.distinct[c] for c in value_table.codes()]
    assert keys == [None if r.key is None else r.key[:5] for r in whole]
    assert values == [None if r.value is None else r.value[:5] for r in whole]
    assert value_table.distinct == [head, b"\x01cccc"]


def test_a_head_shared_by_records_is_kept_once() -> None:
    same = b"\x00\x00\x00\x00\x07"
    records = [Rec(same + b"a"), Rec(same + b"b"), Rec(b"\x00\x00"), Rec(None), Rec(same)]
    keys, values = record_heads(encode_batch(records), 1 << 20, 5)
    assert values.distinct == [same, b"\x00\x00"]
    assert values.codes() == [0, 0, 1, -1, 0]
    assert keys.distinct == [] and keys.codes() == [-1] * 5
    _, uniform = record_heads(encode_batch([Rec(same)] * 3), 1 << 20, 5)
    assert uniform.distinct == [same] and uniform.codes() == [0, 0, 0]
    _, empty = record_heads(encode_batch([]), 1 << 20, 5)
    assert empty.codes() == []
