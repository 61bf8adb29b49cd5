"""Masking keys (broker/masking.py, the policy's `keys`) and Protobuf schemas with references
(broker/masking_protobuf.py): a key in the wire format with a registered schema masked as
a value is, other keys as stored unless a policy fails closed on them; a message using
types imported through references decoded, their tagged fields masked, re-encoded."""

from __future__ import annotations

import base64
import json
import struct
from typing import Any

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from conformance.wire import Rec, encode_batch
from contextplane.broker.masking import FAIL_CLOSED, REDACTED, FieldMasker, mask_chunks
from contextplane.protocol.record_codec import read_records
from contextplane.security.masking_policy import (
    KEYS_CLEAR,
    KEYS_FAIL_CLOSED,
    KEYS_MASKED,
    MaskingPolicy,
    encode_policy,
    make_policy,
    parse_policy,
)
from contextplane.services.schema_registry.records import encode, schema_key
from contextplane.services.schema_registry.state import RegistryState

HMAC_KEY = b"secret-key"
LIMIT = 64 << 20
KEY_SCHEMA = {
    "type": "object",
    "properties": {
        "account": {"type": "string"},
        "email": {"type": "string", "confluent:tags": ["PII"]},
    },
}
VALUE_SCHEMA = {
    "type": "object",
    "properties": {
        "note": {"type": "string"},
        "phone": {"type": "string", "confluent:tags": ["PII"]},
    },
}


def register(state: RegistryState, subject: str, schema_id: int, schema: str, **extra: Any) -> None:
    value = {"subject": subject, "version": 1, "id": schema_id, "schema": schema, **extra}
    state.apply(encode(schema_key(subject, 1)), encode(value))
    assert schema_id in state.schemas, subject


def json_catalog() -> RegistryState:
    state = RegistryState()
    register(state, "people-key", 1, json.dumps(KEY_SCHEMA), schemaType="JSON")
    register(state, "people-value", 2, json.dumps(VALUE_SCHEMA), schemaType="JSON")
    return state


def framed(schema_id: int, document: object) -> bytes:
    return struct.pack(">bI", 0, schema_id) + json.dumps(document).encode()


def policy(keys: str = KEYS_MASKED, action: str = "redact", name: str = "p") -> MaskingPolicy:
    return make_policy(name, "User:copilot", "people", ["PII"], action, keys)


def masked_records(
    records: list[Rec], *policies: MaskingPolicy
) -> tuple[list[Any], dict[str, int]]:
    state = json_catalog()
    masker = FieldMasker(policies, state.schemas.get, HMAC_KEY, state.referenced_schema)
    masked = mask_chunks([encode_batch(records, compression="lz4")], masker, LIMIT, LIMIT)
    return read_records(masked.chunks[0], LIMIT)[1], masked.counts


KEY = framed(1, {"account": "acc-1", "email": "ada@example.com"})
VALUE = framed(2, {"note": "hi", "phone": "555-0100"})


def test_a_key_with_a_registered_schema_is_masked_as_a_value_is() -> None:
    records, counts = masked_records([Rec(VALUE, KEY), Rec(None, KEY)], policy())
    for record in records:
        assert record.key is not None and record.key[:5] == KEY[:5]
        assert json.loads(record.key[5:]) == {"account": "acc-1", "email": REDACTED}
    assert json.loads(records[0].value[5:]) == {"note": "hi", "phone": REDACTED}
    assert records[1].value is None  # a tombstone stays one; its key is masked
    assert counts == {"redact": 2}  # one per record, key and value together


def test_keys_without_a_registered_schema_are_sent_as_stored_by_default() -> None:
    plain = [b"acc-1", struct.pack(">q", 7), framed(99, {"email": "x"}), b"\x00\x00"]
    records, counts = masked_records([Rec(None, key) for key in plain], policy())
    assert [r.key for r in records] == plain
    assert counts == {}
    # A key that claims a registered schema and does not decode against it: not sent.
    records, counts = masked_records([Rec(None, b"\x00\x00\x00\x00\x01{not json")], policy())
    assert records[0].key is None and counts == {FAIL_CLOSED: 1}


def test_keys_fail_closed_and_clear() -> None:
    plain = [b"acc-1", framed(99, {"email": "x"}), KEY]
    records, counts = masked_records([Rec(None, k) for k in plain], policy(KEYS_FAIL_CLOSED))
    assert [r.key for r in records[:2]] == [None, None]
    assert json.loads(records[2].key[5:])["email"] == REDACTED
    assert counts == {FAIL_CLOSED: 2, "redact": 1}
    # `clear`: keys as stored, byte for byte, the value still masked.
    records, counts = masked_records([Rec(VALUE, KEY)], policy(KEYS_CLEAR))
    assert records[0].key == KEY and json.loads(records[0].value[5:])["phone"] == REDACTED
    # Another covering policy that masks keys still masks them, with its own action.
    records, _ = masked_records(
        [Rec(VALUE, KEY)], policy(KEYS_CLEAR), policy(KEYS_MASKED, "keep-last-3", "q")
    )
    assert json.loads(records[0].key[5:])["email"] == "************com"
    assert json.loads(records[0].value[5:])["phone"] == REDACTED  # the stronger of two


def test_the_keys_field_is_parsed_defaulted_and_refused() -> None:
    written = policy(KEYS_FAIL_CLOSED)
    assert parse_policy("p", encode_policy(written)) == written
    old = b'{"principal": "User:c", "topic": "t", "tags": ["PII"], "action": "redact"}'
    assert parse_policy("p", old).keys == KEYS_MASKED  # written before keys were masked
    for keys in (b'"all"', b"true", b"null"):
        with pytest.raises(ValueError, match="keys"):
            parse_policy("p", old[:-1] + b', "keys": ' + keys + b"}")


COUNTRY = """syntax = "proto3";
package geo;
import "confluent/meta.proto";
message Country {
  string code = 1;
  string leader = 2 [(confluent.field_meta).tags = "PII"];
}
"""
ADDRESS = """syntax = "proto3";
package geo;
import "confluent/meta.proto";
import "geo/country.proto";
message Address {
  string street = 1 [(confluent.field_meta).tags = "PII"];
  Country country = 2;
}
"""
CUSTOMER = """syntax = "proto3";
package crm;
import "confluent/meta.proto";
import "geo/address.proto";
message Customer {
  string name = 1;
  string email = 2 [(confluent.field_meta).tags = "PII"];
  geo.Address home = 3;
  repeated geo.Address others = 4;
}
"""


def protobuf_catalog() -> RegistryState:
    """Customer imports Address (a reference), which imports Country (another)."""
    state = RegistryState()
    register(state, "geo-country", 11, COUNTRY, schemaType="PROTOBUF")
    country = [{"name": "geo/country.proto", "subject": "geo-country", "version": 1}]
    register(state, "geo-address", 12, ADDRESS, schemaType="PROTOBUF", references=country)
    address = [{"name": "geo/address.proto", "subject": "geo-address", "version": 1}]
    register(state, "customers-value", 13, CUSTOMER, schemaType="PROTOBUF", references=address)
    return state


def client_classes(state: RegistryState) -> descriptor_pool.DescriptorPool:
    """The classes a client builds from the descriptors the registry serves."""
    pool = descriptor_pool.DescriptorPool()
    for schema_id, name in ((11, "geo/country.proto"), (12, "geo/address.proto"), (13, "c.proto")):
        file = descriptor_pb2.FileDescriptorProto.FromString(
            base64.b64decode(state.schemas[schema_id].serialized)
        )
        file.dependency.remove("confluent/meta.proto")
        file.name = name
        pool.Add(file)
    return pool


def test_protobuf_with_references_is_decoded_and_imported_types_masked() -> None:
    state = protobuf_catalog()
    customer_class = message_factory.GetMessageClass(
        client_classes(state).FindMessageTypeByName("crm.Customer")
    )
    customer = customer_class(name="Ada", email="ada@example.com")
    customer.home.street = "1 Main St"
    customer.home.country.code = "UK"
    customer.home.country.leader = "Someone"
    customer.others.add(street="2 Side St")
    value = struct.pack(">bI", 0, 13) + b"\x00" + customer.SerializeToString()
    masker = FieldMasker([policy()], state.schemas.get, HMAC_KEY, state.referenced_schema)
    # Two values: the codec (one pool of three files) is built once and reused.
    masked = mask_chunks([encode_batch([Rec(value), Rec(value)])], masker, LIMIT, LIMIT)
    assert masked.counts == {"redact": 2}
    for record in read_records(masked.chunks[0], LIMIT)[1]:
        assert record.value[:6] == value[:6]
        read = customer_class.FromString(record.value[6:])
        assert (read.name, read.email) == ("Ada", REDACTED)
        assert (read.home.street, read.home.country.code) == (REDACTED, "UK")
        assert read.home.country.leader == REDACTED  # tagged two references down
        assert [o.street for o in read.others] == [REDACTED]


def test_protobuf_whose_reference_is_gone_fails_closed() -> None:
    state = protobuf_catalog()
    value = struct.pack(">bI", 0, 13) + b"\x00" + b"\x0a\x03Ada"
    # A lookup that finds no referenced version (as for a schema whose reference is gone).
    masker = FieldMasker([policy()], state.schemas.get, HMAC_KEY)
    masked = mask_chunks([encode_batch([Rec(value, b"k")])], masker, LIMIT, LIMIT)
    record = read_records(masked.chunks[0], LIMIT)[1][0]
    assert record.value is None and record.key == b"k"
    assert masked.counts == {FAIL_CLOSED: 1}
