"""Field tags read from schemas (Avro and JSON Schema `confluent:tags`, Protobuf
`(confluent.field_meta).tags`) and from `metadata.tags` patterns, by the paths
confluent-kafka's rule executors give fields; its own functions are the oracle where it
has them."""

from __future__ import annotations

import base64
import json

import pytest
from confluent_kafka.schema_registry.common.avro import get_inline_tags
from confluent_kafka.schema_registry.wildcard_matcher import wildcard_match

from contextplane.services.schema_registry.field_tags import FieldTags, inline_tags, tags_of
from contextplane.services.schema_registry.formats import parse
from contextplane.services.schema_registry.records import encode, schema_key
from contextplane.services.schema_registry.state import RegistryState

AVRO = {
    "type": "record",
    "name": "Customer",
    "namespace": "shop",
    "fields": [
        {"name": "ssn", "type": "string", "confluent:tags": ["PII", "SECRET"]},
        {"name": "name", "type": "string"},
        {
            "name": "address",
            "type": {
                "type": "record",
                "name": "Address",
                "fields": [{"name": "street", "type": "string", "confluent:tags": ["PII"]}],
            },
        },
        {
            "name": "cards",
            "type": {
                "type": "array",
                "items": {
                    "type": "record",
                    "name": "other.Card",
                    "fields": [{"name": "number", "type": "string", "confluent:tags": ["PCI"]}],
                },
            },
        },
        {"name": "home", "type": ["null", "shop.Address"], "default": None},
    ],
}

JSON_SCHEMA = {
    "type": "object",
    "title": "Customer",
    "definitions": {
        "Address": {
            "type": "object",
            "properties": {"street": {"type": "string", "confluent:tags": ["PII"]}},
        }
    },
    "properties": {
        "ssn": {"type": "string", "confluent:tags": ["PII"]},
        "address": {"$ref": "#/definitions/Address"},
        "cards": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"number": {"type": "string", "confluent:tags": ["PCI"]}},
            },
        },
        "either": {"oneOf": [{"type": "null"}, {"$ref": "#/definitions/Address"}]},
    },
}

PROTO = """
syntax = "proto3";
package shop;
import "confluent/meta.proto";

message Customer {
  string ssn = 1 [(confluent.field_meta).tags = "PII"];
  string name = 2;
  string secret = 3 [(confluent.field_meta) = { tags: ["PII", "SECRET"] }];
  message Card {
    string number = 1 [(confluent.field_meta) = { tags: "PCI" tags: "PII" }];
  }
  repeated Card cards = 4;
}
"""


def test_avro_tags_are_those_confluent_kafka_finds() -> None:
    found = inline_tags(parse("AVRO", json.dumps(AVRO))).paths
    expected = {path: frozenset(tags) for path, tags in get_inline_tags(AVRO).items()}
    assert found == expected
    assert found["shop.Customer.ssn"] == {"PII", "SECRET"}
    assert found["other.Card.number"] == {"PCI"}


def test_json_schema_tags_by_property_path() -> None:
    found = inline_tags(parse("JSON", json.dumps(JSON_SCHEMA))).paths
    assert found == {
        "$.ssn": {"PII"},
        "$.address.street": {"PII"},
        "$.cards.number": {"PCI"},
        "$.either.street": {"PII"},
    }


def test_a_recursive_json_schema_tags_its_fields_at_every_depth() -> None:
    recursive = {
        "definitions": {
            "Node": {
                "type": "object",
                "properties": {
                    "secret": {"type": "string", "confluent:tags": ["PII"]},
                    "next": {"$ref": "#/definitions/Node"},
                },
            }
        },
        "$ref": "#/definitions/Node",
    }
    found = inline_tags(parse("JSON", json.dumps(recursive)))
    assert found.paths == {"$.secret": {"PII"}}
    for path in ("$.secret", "$.next.secret", "$.next.next.next.secret"):
        assert tags_of(path, found, None) == {"PII"}
    assert tags_of("$.next.next.other", found, None) == frozenset()


def test_protobuf_tags_from_field_options() -> None:
    found = inline_tags(parse("PROTOBUF", PROTO)).paths
    assert found == {
        "shop.Customer.ssn": {"PII"},
        "shop.Customer.secret": {"PII", "SECRET"},
        "shop.Customer.Card.number": {"PCI", "PII"},
    }


@pytest.mark.parametrize(
    "pattern",
    [
        "shop.Customer.ssn",
        "*.Customer.*",
        "shop.*",
        "shop.**",
        "**.ssn",
        "sho?.**",
        "**",
        "a*",
        "**.*",
        "shop.**.*",
        "*",
        "?",
        "",
        "s*p.C*r.s?n",
        "**b**c",
        "shop.Customer.ssn.",
    ],
)
def test_metadata_tag_patterns_match_as_confluent_kafkas_matcher(pattern: str) -> None:
    metadata = {"tags": {pattern: ["FROM_METADATA"]}}
    for path in ("shop.Customer.ssn", "shop.Customer.Card.number", "shop.x", "abc", "a", ""):
        tagged = "FROM_METADATA" in tags_of(path, FieldTags(), metadata)
        assert tagged == wildcard_match(path, pattern), (path, pattern)


def test_the_index_of_a_stored_schema_joins_both() -> None:
    state = RegistryState()
    value = {
        "subject": "s",
        "version": 1,
        "id": 7,
        "schema": json.dumps(AVRO),
        "metadata": {"tags": {"**.name": ["PII"], "shop.Customer.ssn": ["EXTRA"]}},
    }
    state.apply(encode(schema_key("s", 1)), encode(value))
    stored = state.schemas[7]
    assert stored.tags_of("shop.Customer.name") == {"PII"}
    assert stored.tags_of("shop.Customer.ssn") == {"PII", "SECRET", "EXTRA"}
    assert stored.tags_of("shop.Address.street") == {"PII"}
    assert stored.tags_of("shop.Customer.cards") == frozenset()


def test_protobuf_tags_survive_a_base64_descriptor() -> None:
    """confluent-kafka's ProtobufSerializer registers a FileDescriptorProto: its field
    options carry the tags (built here with the client's own `meta_pb2`)."""
    from confluent_kafka.schema_registry.confluent import meta_pb2
    from google.protobuf import descriptor_pb2

    file = descriptor_pb2.FileDescriptorProto(
        name="customer.proto", package="shop", syntax="proto3", dependency=["confluent/meta.proto"]
    )
    message = file.message_type.add(name="Customer")
    ssn = message.field.add(name="ssn", number=1, type=9, label=1)
    ssn.options.Extensions[meta_pb2.field_meta].tags.extend(["PII", "SECRET"])
    ssn.options.Extensions[meta_pb2.field_meta].doc = "social security number"
    message.field.add(name="name", number=2, type=9, label=1)
    encoded = base64.b64encode(file.SerializeToString()).decode()
    parsed = parse("PROTOBUF", encoded)
    assert inline_tags(parsed).paths == {"shop.Customer.ssn": {"PII", "SECRET"}}
    assert parsed.canonical == parse("PROTOBUF", parsed.canonical).canonical


def test_a_pattern_that_backtracks_in_a_regular_expression_is_decided_at_once() -> None:
    """`**a` repeated backtracks exponentially in the clients' regular expression; here
    it is len(path) × len(pattern) steps (a path of 300 characters, 60 wildcards)."""
    path = "a" * 300
    pattern = "**a" * 60 + "b"
    assert tags_of(path, FieldTags(), {"tags": {pattern: ["X"]}}) == frozenset()
    assert tags_of(path, FieldTags(), {"tags": {"**a" * 60: ["X"]}}) == {"X"}
