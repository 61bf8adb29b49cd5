"""`?format=serialized`: a stored Protobuf schema as the FileDescriptorProto protoc would
build, tested by the round trip a client makes (a descriptor registered, its `.proto`
stored, a descriptor served) and by loading the served descriptor into a descriptor pool
as confluent-kafka does."""

from __future__ import annotations

import base64

from confluent_kafka.schema_registry.common.protobuf import _init_pool
from confluent_kafka.schema_registry.confluent import meta_pb2
from google.protobuf import descriptor_pb2, descriptor_pool

from contextplane.services.schema_registry.formats import parse
from contextplane.services.schema_registry.protobuf_descriptor import serialized
from contextplane.services.schema_registry.protobuf_schema import ProtobufSchema

F = descriptor_pb2.FieldDescriptorProto


def customer_file() -> descriptor_pb2.FileDescriptorProto:
    """What a serializer sends: nested message and enum, a map, a oneof, a proto3
    optional field, a well-known type, an enum of the file, a tagged field."""
    file = descriptor_pb2.FileDescriptorProto(
        name="shop/customer.proto",
        package="shop",
        syntax="proto3",
        dependency=["confluent/meta.proto", "google/protobuf/timestamp.proto"],
    )
    status = file.enum_type.add(name="Status")
    status.value.add(name="UNKNOWN", number=0)
    status.value.add(name="ACTIVE", number=1)
    customer = file.message_type.add(name="Customer")
    ssn = customer.field.add(name="ssn", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    ssn.options.Extensions[meta_pb2.field_meta].tags.extend(["PII", "SECRET"])
    customer.field.add(name="age", number=2, type=F.TYPE_INT32, label=F.LABEL_OPTIONAL)
    customer.field.add(
        name="status", number=3, type=F.TYPE_ENUM, type_name=".shop.Status", label=F.LABEL_OPTIONAL
    )
    customer.field.add(
        name="seen", number=4, type=F.TYPE_MESSAGE, type_name=".google.protobuf.Timestamp",
        label=F.LABEL_OPTIONAL,
    )  # fmt: skip
    customer.field.add(
        name="cards", number=5, type=F.TYPE_MESSAGE, type_name=".shop.Customer.Card",
        label=F.LABEL_REPEATED,
    )  # fmt: skip
    customer.field.add(
        name="labels", number=6, type=F.TYPE_MESSAGE, type_name=".shop.Customer.LabelsEntry",
        label=F.LABEL_REPEATED,
    )  # fmt: skip
    customer.field.add(
        name="nickname", number=7, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL,
        proto3_optional=True, oneof_index=1,
    )  # fmt: skip
    customer.field.add(
        name="email", number=8, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL, oneof_index=0
    )
    customer.field.add(
        name="phone", number=9, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL, oneof_index=0
    )
    customer.oneof_decl.add(name="contact")
    customer.oneof_decl.add(name="_nickname")
    card = customer.nested_type.add(name="Card")
    card.field.add(name="number", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    card.field.add(
        name="kind", number=2, type=F.TYPE_ENUM, type_name=".shop.Customer.Card.Kind",
        label=F.LABEL_OPTIONAL,
    )  # fmt: skip
    kind = card.enum_type.add(name="Kind")
    kind.value.add(name="DEBIT", number=0)
    entry = customer.nested_type.add(name="LabelsEntry")
    entry.options.map_entry = True
    entry.field.add(name="key", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    entry.field.add(name="value", number=2, type=F.TYPE_INT64, label=F.LABEL_OPTIONAL)
    return file


def served(schema: ProtobufSchema) -> descriptor_pb2.FileDescriptorProto:
    return descriptor_pb2.FileDescriptorProto.FromString(base64.b64decode(serialized(schema)))


def test_a_registered_descriptor_is_served_back_as_it_was_sent() -> None:
    original = customer_file()
    stored = parse("PROTOBUF", base64.b64encode(original.SerializeToString()).decode())
    assert "(confluent.field_meta)" in stored.canonical
    back = served(stored)
    back.name = original.name  # the client names the file itself
    assert sorted(back.message_type[0].nested_type, key=lambda m: m.name) == sorted(
        original.message_type[0].nested_type, key=lambda m: m.name
    )
    del back.message_type[0].nested_type[:]
    del original.message_type[0].nested_type[:]
    ours = {f.name: f for f in back.message_type[0].field}
    theirs = {f.name: f for f in original.message_type[0].field}
    assert ours == theirs
    assert back.message_type[0].oneof_decl == original.message_type[0].oneof_decl
    assert (back.package, back.syntax, back.enum_type) == (
        original.package,
        original.syntax,
        original.enum_type,
    )
    assert sorted(back.dependency) == sorted(original.dependency)


def test_the_served_descriptor_loads_where_confluent_kafka_loads_it() -> None:
    stored = parse("PROTOBUF", base64.b64encode(customer_file().SerializeToString()).decode())
    back = served(stored)
    back.name = "default"
    pool = descriptor_pool.DescriptorPool()
    _init_pool(pool)
    pool.Add(back)
    customer = pool.FindMessageTypeByName("shop.Customer")
    ssn = customer.fields_by_name["ssn"]
    assert list(ssn.GetOptions().Extensions[meta_pb2.field_meta].tags) == ["PII", "SECRET"]
    assert customer.fields_by_name["labels"].message_type.GetOptions().map_entry
    assert customer.fields_by_name["status"].enum_type.full_name == "shop.Status"


def test_proto_text_is_served_as_protoc_would_build_it() -> None:
    text = """
syntax = "proto2";
package p.q;
message Outer {
  required int64 id = 1;
  optional Inner inner = 2;
  repeated .p.q.Outer.Inner many = 3;
  map<string, Inner> by_name = 4 [(confluent.field_meta).tags = "PII"];
  message Inner { optional sint32 n = 1; }
}
"""
    back = served(
        parse(
            "PROTOBUF", text.replace("package p.q;", 'package p.q;\nimport "confluent/meta.proto";')
        )
    )
    outer = back.message_type[0]
    fields = {f.name: f for f in outer.field}
    assert fields["id"].label == F.LABEL_REQUIRED and fields["id"].type == F.TYPE_INT64
    assert fields["inner"].type_name == ".p.q.Outer.Inner"
    assert fields["many"].label == F.LABEL_REPEATED
    assert fields["by_name"].type_name == ".p.q.Outer.ByNameEntry"
    entry = next(m for m in outer.nested_type if m.name == "ByNameEntry")
    assert entry.field[1].type_name == ".p.q.Outer.Inner"
    assert meta_pb2.field_meta.number == 1088
