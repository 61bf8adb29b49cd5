"""Protobuf schemas: the canonical string, what is refused (42201 naming the problem), a
table of Confluent's documented compatibility outcomes (its protobuf `SchemaDiff` cases,
schemas written here), imports through references, and the base64 descriptors
confluent-kafka's serializer registers read as the same schema as their text."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from google.protobuf import descriptor_pb2

from contextplane.services.schema_registry.errors import RegistryError
from contextplane.services.schema_registry.formats import parse
from contextplane.services.schema_registry.protobuf_compat import COMPATIBLE, differences
from contextplane.services.schema_registry.protobuf_schema import ProtobufSchema
from contextplane.services.schema_registry.store import MemoryStore
from tests.unit.test_schema_registry_api import Client, error, run

HEAD = 'syntax = "proto3";\npackage acme;\n'
ORDER = HEAD + "message Order {\n  int64 id = 1;\n  string note = 2;\n}\n"


def proto(text: str) -> ProtobufSchema:
    parsed = parse("PROTOBUF", text)
    assert isinstance(parsed, ProtobufSchema)
    return parsed


def test_the_canonical_string_drops_whitespace_and_comments() -> None:
    noisy = HEAD + "// orders\nmessage   Order {  int64 id = 1; // the key\n string note = 2; }"
    assert proto(noisy).canonical == proto(ORDER).canonical
    assert proto(proto(ORDER).canonical).canonical == proto(ORDER).canonical
    renamed = ORDER.replace("note", "comment")
    assert proto(renamed).canonical != proto(ORDER).canonical


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("message { bad", "line 1"),
        (HEAD + "message A { Missing m = 1; }", "type Missing is not defined"),
        (HEAD + "message A { int32 a = 1; int32 b = 1; }", "used twice"),
        (HEAD + "message A { int32 a = 0; }", "not usable"),
        (HEAD + "message A { int32 a = 19000; }", "not usable"),
        (HEAD + "message A {} message A {}", "already defined"),
        (HEAD + 'import "other.proto";', "no schema reference"),
        (HEAD + "message A { map<double, string> m = 1; }", "mismatched input 'double'"),
        ("message A {" * 40 + "}" * 40, "nested deeper"),
        ("abcd", "line 1"),  # base64 that decodes to no descriptor is read as text
    ],
)
def test_invalid_schemas_are_refused_naming_the_problem(text: str, problem: str) -> None:
    with pytest.raises(RegistryError) as caught:
        parse("PROTOBUF", text)
    assert caught.value.error_code == 42201
    assert problem in caught.value.message


def message(body: str, extra: str = "") -> str:
    return HEAD + f"message M {{\n{body}\n}}\n{extra}"


# (what changes, original, update, the change types reported, compatible)
CASES: list[tuple[str, str, str, set[str], bool]] = [
    ("nothing", message("int32 a = 1;"), message("int32 a = 1;"), set(), True),
    (
        "a field added",
        message("int32 a = 1;"),
        message("int32 a = 1; string b = 2;"),
        {"FIELD_ADDED"},
        True,
    ),
    (
        "a field removed",
        message("int32 a = 1; string b = 2;"),
        message("int32 a = 1;"),
        {"FIELD_REMOVED"},
        True,
    ),
    (
        "a field renamed",
        message("int32 a = 1;"),
        message("int32 b = 1;"),
        {"FIELD_NAME_CHANGED"},
        True,
    ),
    (
        "int32 to int64 (one wire group)",
        message("int32 a = 1;"),
        message("int64 a = 1;"),
        set(),
        True,
    ),
    ("int32 to bool", message("int32 a = 1;"), message("bool a = 1;"), set(), True),
    (
        "int32 to sint32",
        message("int32 a = 1;"),
        message("sint32 a = 1;"),
        {"FIELD_SCALAR_KIND_CHANGED"},
        False,
    ),
    ("string to bytes", message("string a = 1;"), message("bytes a = 1;"), set(), True),
    (
        "string to int32",
        message("string a = 1;"),
        message("int32 a = 1;"),
        {"FIELD_SCALAR_KIND_CHANGED"},
        False,
    ),
    ("fixed32 to sfixed32", message("fixed32 a = 1;"), message("sfixed32 a = 1;"), set(), True),
    (
        "fixed32 to fixed64",
        message("fixed32 a = 1;"),
        message("fixed64 a = 1;"),
        {"FIELD_SCALAR_KIND_CHANGED"},
        False,
    ),
    (
        "float to double",
        message("float a = 1;"),
        message("double a = 1;"),
        {"FIELD_SCALAR_KIND_CHANGED"},
        False,
    ),
    (
        "an enum to int32",
        message("E a = 1;", "enum E { Z = 0; }"),
        message("int32 a = 1;", "enum E { Z = 0; }"),
        set(),
        True,
    ),
    (
        "a scalar to a message",
        message("int32 a = 1;", "message N { int32 x = 1; }"),
        message("N a = 1;", "message N { int32 x = 1; }"),
        {"FIELD_KIND_CHANGED"},
        False,
    ),
    (
        "a message type renamed",
        message("N a = 1;", "message N {} message P {}"),
        message("P a = 1;", "message N {} message P {}"),
        {"FIELD_NAMED_TYPE_CHANGED"},
        False,
    ),
    (
        "a map's value type",
        message("map<string, int32> a = 1;"),
        message("map<string, string> a = 1;"),
        {"FIELD_SCALAR_KIND_CHANGED"},
        False,
    ),
    (
        "a map to a scalar",
        message("map<string, int32> a = 1;"),
        message("int32 a = 1;"),
        {"FIELD_KIND_CHANGED"},
        False,
    ),
    (
        "repeated int32 made single",
        message("repeated int32 a = 1;"),
        message("int32 a = 1;"),
        {"FIELD_NUMERIC_LABEL_CHANGED"},
        False,
    ),
    (
        "repeated string made single",
        message("repeated string a = 1;"),
        message("string a = 1;"),
        {"FIELD_STRING_OR_BYTES_LABEL_CHANGED"},
        True,
    ),
    (
        "a message added",
        message("int32 a = 1;"),
        message("int32 a = 1;", "message N {}"),
        {"MESSAGE_ADDED"},
        True,
    ),
    (
        "a message removed",
        message("int32 a = 1;", "message N {}"),
        message("int32 a = 1;"),
        {"MESSAGE_REMOVED"},
        False,
    ),
    (
        "the package changed",
        message("int32 a = 1;"),
        message("int32 a = 1;").replace("acme", "other"),
        {"PACKAGE_CHANGED"},
        False,
    ),
    (
        "an enum value added",
        message("", "enum E { Z = 0; }"),
        message("", "enum E { Z = 0; O = 1; }"),
        {"ENUM_CONST_ADDED"},
        True,
    ),
    ("an enum removed", message("", "enum E { Z = 0; }"), message(""), {"ENUM_REMOVED"}, True),
    (
        "a oneof added around new fields",
        message("int32 a = 1;"),
        message("int32 a = 1; oneof o { int32 b = 2; string c = 3; }"),
        {"ONEOF_ADDED", "ONEOF_FIELD_ADDED"},
        True,
    ),
    (
        "a oneof removed whole",
        message("int32 a = 1; oneof o { int32 b = 2; }"),
        message("int32 a = 1;"),
        {"ONEOF_REMOVED"},
        True,
    ),
    (
        "a field removed from a oneof",
        message("oneof o { int32 b = 2; string c = 3; }"),
        message("oneof o { int32 b = 2; }"),
        {"ONEOF_FIELD_REMOVED"},
        False,
    ),
    (
        "a field moved out of a oneof",
        message("oneof o { int32 b = 2; string c = 3; }"),
        message("int32 b = 2; oneof o { string c = 3; }"),
        {"ONEOF_FIELD_MOVED_TO_TOP_LEVEL"},
        True,
    ),
    (
        "two fields moved into a new oneof",
        message("int32 a = 1; int32 b = 2;"),
        message("oneof o { int32 a = 1; int32 b = 2; }"),
        {"ONEOF_ADDED", "MULTIPLE_FIELDS_MOVED_TO_ONEOF"},
        False,
    ),
    (
        "a field moved into an existing oneof",
        message("int32 a = 1; oneof o { int32 b = 2; }"),
        message("oneof o { int32 a = 1; int32 b = 2; }"),
        {"FIELD_MOVED_TO_EXISTING_ONEOF"},
        False,
    ),
    (
        "one field moved into a new oneof",
        message("int32 a = 1;"),
        message("oneof o { int32 a = 1; }"),
        {"ONEOF_ADDED"},
        True,
    ),
    (
        "a type change inside a oneof is seen",
        message("oneof o { int32 b = 2; }"),
        message("oneof o { string b = 2; }"),
        {"FIELD_SCALAR_KIND_CHANGED"},
        False,
    ),
]
PROTO2 = 'syntax = "proto2";\npackage acme;\n'
CASES += [
    (
        "a required field added",
        PROTO2 + "message M { optional int32 a = 1; }",
        PROTO2 + "message M { optional int32 a = 1; required int32 b = 2; }",
        {"REQUIRED_FIELD_ADDED"},
        False,
    ),
    (
        "a required field removed",
        PROTO2 + "message M { required int32 a = 1; }",
        PROTO2 + "message M { }",
        {"REQUIRED_FIELD_REMOVED"},
        False,
    ),
]


@pytest.mark.parametrize(
    ("original", "update", "changes", "compatible"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_confluents_documented_changes(
    original: str, update: str, changes: set[str], compatible: bool
) -> None:
    found = differences(proto(original), proto(update))
    assert {change for change, _ in found} == changes
    assert all(change in COMPATIBLE for change, _ in found) == compatible


def descriptor_text(text_schema: str) -> str:
    """What confluent-kafka's ProtobufSerializer registers: a base64 FileDescriptorProto."""
    descriptor = descriptor_pb2.FileDescriptorProto(
        name="order.proto", package="acme", syntax="proto3"
    )
    order = descriptor.message_type.add(name="Order")
    order.field.add(name="id", number=1, type=3, label=1)  # int64
    order.field.add(name="note", number=2, type=9, label=1)  # string
    return base64.b64encode(descriptor.SerializeToString()).decode()


def body(text: str, **extra: Any) -> dict[str, Any]:
    return {"schema": text, "schemaType": "PROTOBUF", **extra}


def test_register_a_descriptor_and_its_text_as_one_schema_and_import_through_references() -> None:
    async def test(client: Client, store: MemoryStore) -> None:
        first = await client("POST", "/subjects/order/versions", body(descriptor_text(ORDER)))
        assert first.json() == {"id": 1}
        assert (await client("POST", "/subjects/order/versions", body(ORDER))).json() == {"id": 1}
        stored = (await client("GET", "/schemas/ids/1")).json()
        assert stored["schemaType"] == "PROTOBUF"
        assert stored["schema"] == proto(ORDER).canonical

        line = (
            HEAD
            + 'import "order.proto";\nmessage Line {\n  Order order = 1;\n  int32 count = 2;\n}\n'
        )
        unresolved = await client("POST", "/subjects/line/versions", body(line))
        assert error(unresolved) == (422, 42201)
        reference = {"name": "order.proto", "subject": "order", "version": 1}
        answer = await client("POST", "/subjects/line/versions", body(line, references=[reference]))
        assert answer.json() == {"id": 2}
        assert (await client("GET", "/subjects/order/versions/1/referencedby")).json() == [2]
        written = len(store.log)
        changed = line.replace("int32 count", "string count")
        refused = await client(
            "POST", "/subjects/line/versions", body(changed, references=[reference])
        )
        assert error(refused) == (409, 409)
        assert "FIELD_SCALAR_KIND_CHANGED" in refused.json()["message"]
        assert len(store.log) == written
        assert json.loads((await client("GET", "/schemas/types")).body) == [
            "AVRO",
            "JSON",
            "PROTOBUF",
        ]

    run(test)
