"""Masking a batch for a consumer (broker/masking.py): tagged JSON fields replaced per
action, the batch rebuilt with its offsets, timestamps, keys, headers, producer fields and
codec, a valid CRC, read back with the project's own batch parser; fail closed on what
cannot be masked; policies parsed and matched (security/masking_policy.py)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import io
import json
import struct
from pathlib import Path
from typing import Any

import fastavro
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, timestamp_pb2

from conformance.wire import Rec, encode_batch
from contextplane.broker.masking import (
    FAIL_CLOSED,
    REDACTED,
    FieldMasker,
    mask_chunks,
    split_batches,
)
from contextplane.broker.masking_policies import MaskingPolicies
from contextplane.metadata.store import open_metadata_store
from contextplane.protocol.control_records import marker_batch
from contextplane.protocol.crc import crc32c
from contextplane.protocol.record_codec import read_records
from contextplane.protocol.records import parse_header
from contextplane.security.masking_policy import (
    MASKING_TOPIC,
    MaskingPolicy,
    encode_policy,
    make_policy,
    parse_policy,
)
from contextplane.services.schema_registry.records import encode, schema_key
from contextplane.services.schema_registry.state import RegistryState
from contextplane.settings import Settings
from contextplane.storage.engine import StorageEngine
from contextplane.storage.memory_objects import MemoryObjectStore
from contextplane.storage.memory_wal import MemoryWal, WalMedium

SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "email": {"type": "string", "confluent:tags": ["PII"]},
        "phones": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"number": {"type": "string", "confluent:tags": ["PII"]}},
            },
        },
        "age": {"type": "integer", "confluent:tags": ["SENSITIVE"]},
    },
}
KEY = b"secret-key"
LIMIT = 64 << 20


def catalog() -> RegistryState:
    state = RegistryState()
    value = {"subject": "people-value", "version": 1, "id": 3, "schemaType": "JSON"}
    state.apply(
        encode(schema_key("people-value", 1)), encode(value | {"schema": json.dumps(SCHEMA)})
    )
    assert 3 in state.schemas
    return state


def wire_value(document: object, schema_id: int = 3) -> bytes:
    return struct.pack(">bI", 0, schema_id) + json.dumps(document).encode()


def masker(*policies: MaskingPolicy) -> FieldMasker:
    return FieldMasker(policies, catalog().schemas.get, KEY)


def policy(action: str, tags: list[str] | None = None) -> MaskingPolicy:
    return make_policy("p", "User:copilot", "people", tags or ["PII"], action)


PERSON = {
    "name": "Ada",
    "email": "ada@example.com",
    "phones": [{"number": "555-0100"}, {"number": "555-0199"}],
    "age": 36,
}


def rebuilt(batch: bytes, mask: FieldMasker) -> tuple[bytes, dict[str, int]]:
    masked = mask_chunks([batch], mask, LIMIT, LIMIT)
    assert len(masked.chunks) == 1
    return masked.chunks[0], masked.counts


@pytest.mark.parametrize("codec", ["none", "gzip", "lz4", "zstd", "snappy"])
def test_a_rebuilt_batch_keeps_everything_but_the_masked_fields(codec: str) -> None:
    records = [
        Rec(wire_value(PERSON), b"k1", [("trace", b"t-1")], 1_700_000_000_000),
        Rec(None, b"k2", [], 1_700_000_000_005),
        Rec(wire_value({"name": "Bob"}), None, [("a", None)], 1_700_000_000_009),
    ]
    batch = bytearray(
        encode_batch(records, compression=codec, producer_id=42, producer_epoch=3, base_sequence=7)
    )
    struct.pack_into(">q", batch, 0, 1000)  # as stored: base offset 1000
    original_header, original = read_records(bytes(batch), LIMIT)
    out, counts = rebuilt(bytes(batch), masker(policy("redact")))

    header = parse_header(out)
    assert crc32c(out[21:]) == struct.unpack_from(">I", out, 17)[0]
    for name in (
        "base_offset",
        "last_offset_delta",
        "base_timestamp",
        "max_timestamp",
        "producer_id",
        "producer_epoch",
        "base_sequence",
        "records_count",
        "attributes",
        "partition_leader_epoch",
    ):
        assert getattr(header, name) == getattr(original_header, name), name
    _, masked = read_records(out, LIMIT)
    assert [(r.offset, r.timestamp, r.key, r.headers, r.attributes) for r in masked] == [
        (r.offset, r.timestamp, r.key, r.headers, r.attributes) for r in original
    ]
    assert masked[0].offset == 1000
    assert json.loads(masked[0].value[5:]) == {
        "name": "Ada",
        "email": REDACTED,
        "phones": [{"number": REDACTED}, {"number": REDACTED}],
        "age": 36,
    }
    assert masked[0].value[:5] == records[0].value[:5]
    assert masked[1].value is None  # a tombstone stays one
    assert masked[2].value == records[2].value  # nothing tagged: the same bytes
    assert counts == {"redact": 1}


def test_a_batch_nothing_tagged_in_is_returned_as_it_was() -> None:
    batch = encode_batch([Rec(wire_value({"name": "Bob"}))], compression="lz4")
    out, counts = rebuilt(batch, masker(policy("redact")))
    assert out == batch and counts == {}


@pytest.mark.parametrize(
    ("action", "email", "age"),
    [
        ("null", None, 36),
        ("keep-last-4", "***********.com", 36),
        ("hash", hmac.new(KEY, b"ada@example.com", hashlib.sha256).hexdigest(), 36),
    ],
)
def test_actions(action: str, email: object, age: int) -> None:
    out, counts = rebuilt(encode_batch([Rec(wire_value(PERSON))]), masker(policy(action)))
    value = read_records(out, LIMIT)[1][0].value
    assert value is not None
    document = json.loads(value[5:])
    assert document["email"] == email and document["age"] == age
    assert counts == {action: 1}


def test_the_strongest_action_wins_and_non_strings_are_nulled_by_redact() -> None:
    both = masker(policy("keep-last-2"), policy("redact", ["PII", "SENSITIVE"]))
    out, counts = rebuilt(encode_batch([Rec(wire_value(PERSON))]), both)
    value = read_records(out, LIMIT)[1][0].value
    assert value is not None
    document = json.loads(value[5:])
    assert document["email"] == REDACTED and document["age"] is None
    assert counts == {"redact": 1}


def test_hash_without_a_key_sends_null() -> None:
    unkeyed = FieldMasker([policy("hash")], catalog().schemas.get, b"")
    out, _ = rebuilt(encode_batch([Rec(wire_value(PERSON))]), unkeyed)
    value = read_records(out, LIMIT)[1][0].value
    assert value is not None and json.loads(value[5:])["email"] is None


@pytest.mark.parametrize(
    "value",
    [
        b'{"email": "a@b.c"}',  # no wire format
        wire_value(PERSON, schema_id=99),  # an unknown id
        b"\x00\x00\x00\x00\x03{not json",  # does not decode
        b"\x00\x00",  # cut short
    ],
)
def test_what_cannot_be_masked_is_sent_null(value: bytes) -> None:
    out, counts = rebuilt(
        encode_batch([Rec(value, b"key")], compression="zstd"), masker(policy("redact"))
    )
    record = read_records(out, LIMIT)[1][0]
    assert record.value is None and record.key == b"key"
    assert counts == {FAIL_CLOSED: 1}


def test_chunks_of_several_batches_and_the_budget() -> None:
    first = encode_batch([Rec(wire_value(PERSON))])
    second = bytearray(encode_batch([Rec(wire_value(PERSON))]))
    struct.pack_into(">q", second, 0, 1)
    assert len(split_batches(first + bytes(second) + b"\x00" * 5)) == 2
    masked = mask_chunks([first + bytes(second)], masker(policy("redact")), LIMIT, LIMIT)
    assert [parse_header(c).base_offset for c in masked.chunks] == [0, 1]
    # A spent budget leaves the later batches for the next fetch; the first always goes.
    masked = mask_chunks([first + bytes(second)], masker(policy("redact")), LIMIT, 1)
    assert [parse_header(c).base_offset for c in masked.chunks] == [0]


def test_policies_parse_match_and_refuse() -> None:
    written = make_policy("copilot-pii", "User:copilot", "crm.*", ["PII"], "keep-last-4")
    read = parse_policy("copilot-pii", encode_policy(written))
    assert read == written
    assert read.covers("User:copilot", "crm.people")
    assert not read.covers("User:alice", "crm.people")
    assert not read.covers("User:copilot", "people")
    everyone = make_policy("all", "*", "people", ["PII"], "null")
    assert everyone.covers("User:anyone", "people") and not everyone.covers("User:x", "people2")
    for bad in (
        b"[]",
        b"{",
        b'{"principal": "copilot", "topic": "t", "tags": ["PII"], "action": "redact"}',
        b'{"principal": "User:c", "topic": "*", "tags": ["PII"], "action": "redact"}',
        b'{"principal": "User:c", "topic": "t", "tags": [], "action": "redact"}',
        b'{"principal": "User:c", "topic": "t", "tags": ["PII"], "action": "shred"}',
        b'{"principal": "User:c", "topic": "t", "tags": ["PII"], "action": "keep-last-99999"}',
        b'{"principal": "User:c", "topic": "t", "tags": "PII", "action": "redact"}',
    ):
        with pytest.raises(ValueError):
            parse_policy("bad", bad)


AVRO = {
    "type": "record",
    "name": "Customer",
    "namespace": "shop",
    "fields": [
        {"name": "name", "type": "string"},
        {"name": "email", "type": "string", "confluent:tags": ["PII"]},
        {"name": "age", "type": "int", "confluent:tags": ["SENSITIVE"]},
        {
            "name": "address",
            "type": [
                "null",
                {
                    "type": "record",
                    "name": "Address",
                    "fields": [{"name": "street", "type": "string", "confluent:tags": ["PII"]}],
                },
            ],
        },
        {"name": "others", "type": {"type": "array", "items": "Address"}},
    ],
}
CUSTOMER = {
    "name": "Ada",
    "email": "ada@example.com",
    "age": 36,
    "address": {"street": "1 Main St"},
    "others": [{"street": "2 Side St"}],
}


def avro_masker(*policies: MaskingPolicy) -> FieldMasker:
    state = RegistryState()
    value = {"subject": "c-value", "version": 1, "id": 5, "schema": json.dumps(AVRO)}
    state.apply(encode(schema_key("c-value", 1)), encode(value))
    return FieldMasker(policies, state.schemas.get, KEY)


def avro_value(datum: dict[str, object]) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(AVRO), datum)
    return struct.pack(">bI", 0, 5) + out.getvalue()


def avro_read(value: bytes | None) -> object:
    assert value is not None and value[:5] == struct.pack(">bI", 0, 5)
    return fastavro.schemaless_reader(io.BytesIO(value[5:]), fastavro.parse_schema(AVRO), None)


def test_avro_fields_are_masked_by_record_name_and_field() -> None:
    out, counts = rebuilt(
        encode_batch([Rec(avro_value(CUSTOMER))], compression="lz4"),
        avro_masker(policy("keep-last-3")),
    )
    assert avro_read(read_records(out, LIMIT)[1][0].value) == {
        **CUSTOMER,
        "email": "************com",
        "address": {"street": "****** St"},
        "others": [{"street": "****** St"}],
    }
    assert counts == {"keep-last-3": 1}


def test_avro_with_a_referenced_type_is_masked_in_every_value_of_a_fetch() -> None:
    # The codec is built once per fetch and reused for every value: the referenced
    # record's name must still resolve on the second and later values, and the tag written
    # in the referenced schema applies where the record is used.
    state = RegistryState()
    street = {"name": "street", "type": "string", "confluent:tags": ["PII"]}
    address = {"type": "record", "name": "Address", "namespace": "geo", "fields": [street]}
    person = {"type": "record", "name": "Person", "namespace": "crm",
              "fields": [{"name": "name", "type": "string"},
                         {"name": "home", "type": "geo.Address"}]}  # fmt: skip
    state.apply(encode(schema_key("geo-address", 1)), encode(
        {"subject": "geo-address", "version": 1, "id": 8, "schema": json.dumps(address)}
    ))  # fmt: skip
    reference = {"name": "geo.Address", "subject": "geo-address", "version": 1}
    state.apply(encode(schema_key("people-value", 1)), encode(
        {"subject": "people-value", "version": 1, "id": 9, "schema": json.dumps(person),
         "references": [reference]}
    ))  # fmt: skip
    assert 9 in state.schemas
    writer = fastavro.parse_schema({**person, "fields": [person["fields"][0],  # type: ignore[dict-item]
                                    {"name": "home", "type": address}]})  # fmt: skip

    def value(name: str, street: str) -> bytes:
        out = io.BytesIO()
        fastavro.schemaless_writer(out, writer, {"name": name, "home": {"street": street}})
        return struct.pack(">bI", 0, 9) + out.getvalue()

    batch = encode_batch([Rec(value("Ada", "1 Main St")), Rec(value("Bob", "2 Side St"))])
    out, counts = rebuilt(batch, FieldMasker([policy("redact")], state.schemas.get, KEY))
    read = [
        fastavro.schemaless_reader(io.BytesIO(record.value[5:]), writer, None)  # type: ignore[index]
        for record in read_records(out, LIMIT)[1]
    ]
    assert read == [
        {"name": "Ada", "home": {"street": "****"}},
        {"name": "Bob", "home": {"street": "****"}},
    ]
    assert counts == {"redact": 2}


def test_avro_masks_the_type_cannot_hold_fail_closed() -> None:
    # `age` is an int: redact cannot write it, so the value is not sent at all.
    out, counts = rebuilt(
        encode_batch([Rec(avro_value(CUSTOMER))]), avro_masker(policy("redact", ["SENSITIVE"]))
    )
    assert read_records(out, LIMIT)[1][0].value is None
    assert counts == {FAIL_CLOSED: 1}
    # A payload that does not decode against its schema.
    out, counts = rebuilt(
        encode_batch([Rec(struct.pack(">bI", 0, 5) + b"\xff\xff")]), avro_masker(policy("redact"))
    )
    assert read_records(out, LIMIT)[1][0].value is None and counts == {FAIL_CLOSED: 1}


def test_transaction_markers_pass_as_stored() -> None:
    data = encode_batch(
        [Rec(wire_value(PERSON))], transactional=True, producer_id=9, producer_epoch=0
    )
    marker = bytearray(marker_batch(9, 0, True, 1_700_000_000_000, 0))
    struct.pack_into(">q", marker, 0, 1)
    masked = mask_chunks([data + bytes(marker)], masker(policy("redact")), LIMIT, LIMIT)
    assert masked.chunks[1] == bytes(marker)
    header = parse_header(masked.chunks[0])
    assert header.is_transactional and header.producer_id == 9
    assert masked.counts == {"redact": 1}


def test_the_policy_fold_keeps_a_policy_a_bad_update_would_replace() -> None:
    policies = MaskingPolicies()
    good = encode_policy(make_policy("a", "User:copilot", "crm.*", ["PII"], "redact"))
    everyone = encode_policy(make_policy("b", "*", "crm.people", ["PII"], "null"))
    batch = encode_batch([Rec(good, b"a"), Rec(everyone, b"b"), Rec(b"{not json", b"a")])
    assert policies._apply([batch], 0, 3) == 3
    assert [p.name for p in policies.covering("User:copilot", "crm.people")] == ["a", "b"]
    assert [p.name for p in policies.covering("User:alice", "crm.people")] == ["b"]
    assert policies.covering("User:alice", "crm.orders") == []
    tombstone = bytearray(encode_batch([Rec(None, b"a")]))
    struct.pack_into(">q", tombstone, 0, 3)
    assert policies._apply([bytes(tombstone)], 3, 4) == 4
    assert [p.name for p in policies.covering("User:copilot", "crm.people")] == ["b"]


PROTO = """syntax = "proto3";
package crm;
import "confluent/meta.proto";
import "google/protobuf/timestamp.proto";
message Account {
  string id = 1;
  google.protobuf.Timestamp opened = 2;
  message Holder {
    string name = 1;
    repeated string emails = 2 [(confluent.field_meta).tags = "PII"];
    int64 ssn = 3 [(confluent.field_meta).tags = "PII"];
  }
  repeated Holder holders = 3;
}
"""


def proto_masker(*policies: MaskingPolicy) -> tuple[FieldMasker, Any]:
    state = RegistryState()
    value = {"subject": "a-value", "version": 1, "id": 8, "schemaType": "PROTOBUF"}
    state.apply(encode(schema_key("a-value", 1)), encode(value | {"schema": PROTO}))
    stored = state.schemas[8]
    # The classes a client builds from the descriptor the registry serves.
    file = descriptor_pb2.FileDescriptorProto.FromString(base64.b64decode(stored.serialized))
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(timestamp_pb2.DESCRIPTOR.serialized_pb)
    file.dependency.remove("confluent/meta.proto")
    pool.Add(file)
    return FieldMasker(policies, state.schemas.get, KEY), pool


def test_protobuf_fields_are_masked_at_any_depth() -> None:
    mask, pool = proto_masker(policy("keep-last-3"))
    account_class = message_factory.GetMessageClass(pool.FindMessageTypeByName("crm.Account"))
    account = account_class(id="acc-1")
    account.opened.seconds = 1_700_000_000
    holder = account.holders.add(name="Ada", ssn=123456789)
    holder.emails.extend(["ada@example.com", "a@b.io"])
    value = struct.pack(">bI", 0, 8) + b"\x00" + account.SerializeToString()  # path [0]
    out, counts = rebuilt(encode_batch([Rec(value)]), mask)
    masked_value = read_records(out, LIMIT)[1][0].value
    assert masked_value is not None and masked_value[:6] == value[:6]
    read = account_class.FromString(masked_value[6:])
    assert (read.id, read.opened.seconds, read.holders[0].name) == ("acc-1", 1_700_000_000, "Ada")
    assert list(read.holders[0].emails) == ["************com", "***.io"]
    assert read.holders[0].ssn == 0  # not a string: cleared
    assert counts == {"keep-last-3": 1}

    # The nested message named by its index path [0, 0]: crm.Account.Holder alone.
    holder_value = struct.pack(">bI", 0, 8) + b"\x04\x00\x00" + holder.SerializeToString()
    out, _ = rebuilt(encode_batch([Rec(holder_value)]), mask)
    masked_value = read_records(out, LIMIT)[1][0].value
    assert masked_value is not None and masked_value[:8] == holder_value[:8]
    holder_class = message_factory.GetMessageClass(pool.FindMessageTypeByName("crm.Account.Holder"))
    assert list(holder_class.FromString(masked_value[8:]).emails) == ["************com", "***.io"]
    # An index path naming no message: sent null.
    out, counts = rebuilt(encode_batch([Rec(struct.pack(">bI", 0, 8) + b"\x02\x0a")]), mask)
    assert read_records(out, LIMIT)[1][0].value is None and counts == {FAIL_CLOSED: 1}


def test_a_broker_that_does_not_lead_the_policy_topic_sends_nothing(tmp_path: Path) -> None:
    """In a cluster, a broker that does not lead `__contextplane_masking` and has no way
    to read it from its leader (no PLAINTEXT listener: `remote` is None) cannot know the
    policies: it counts them as unreadable (the fetch answers KAFKA_STORAGE_ERROR instead
    of records); no policy topic at all means no policies. Reading from the leader:
    test_topic_follower.py."""

    async def scenario() -> None:
        settings = Settings(data_dir=tmp_path, upload_interval_ms=3_600_000)
        metadata = open_metadata_store(f"sqlite:///{tmp_path / 'metadata.db'}")
        await metadata.open()
        engine = StorageEngine(
            settings, metadata, wal=MemoryWal(WalMedium()), objects=MemoryObjectStore()
        )
        await engine.open()
        try:
            policies = MaskingPolicies()
            await policies.catch_up(engine)
            assert not policies.incomplete and not policies.any  # no such topic
            engine.led_elsewhere[(MASKING_TOPIC, 0)] = (2, 1)  # node 2 leads it
            assert policies.behind(engine)
            await policies.catch_up(engine)
            assert policies.incomplete
            assert policies.behind(engine)  # asked again at every fetch until it leads
        finally:
            await engine.close()
            await metadata.close()

    asyncio.run(scenario())
