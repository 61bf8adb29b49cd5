"""A stored `.proto` as a base64 FileDescriptorProto: Confluent's `?format=serialized`,
which confluent-kafka's ProtobufSerializer asks for whenever it serializes with the
latest version (`use.latest.version`, `use.latest.with.metadata`) to run that version's
rules against its descriptor.

Built from the parser's syntax tree as protoc builds a descriptor: nested messages and
enums, oneofs (and proto3 `optional` as a synthetic oneof), map fields as nested
`...Entry` messages, every type name resolved to its full name, imports as
dependencies, and `(confluent.field_meta).tags` kept in the field's options (the
rules select fields by them). Other options are left out.
"""

from __future__ import annotations

import base64
from typing import Any

from google.protobuf import descriptor_pb2
from proto_schema_parser import ast
from proto_schema_parser.parser import Parser

from contextplane.services.schema_registry.protobuf_schema import (
    FIELD_META_NUMBER,
    SCALAR_TYPES,
    ProtobufSchema,
    confluent_tags,
    resolve_type,
)

Field = descriptor_pb2.FieldDescriptorProto
_LABELS = {"optional": Field.LABEL_OPTIONAL, "required": Field.LABEL_REQUIRED}
_SCALARS = {name: number for number, name in SCALAR_TYPES.items()}
# Enums among the well-known types (all others are messages).
_WELL_KNOWN_ENUMS = frozenset({"google.protobuf.NullValue"})


def serialized(schema: ProtobufSchema) -> str:
    """The schema's FileDescriptorProto, base64 (what confluent-kafka decodes)."""
    tree = Parser().parse(schema.canonical)
    file = descriptor_pb2.FileDescriptorProto(syntax=tree.syntax or "proto2")
    if schema.package:
        file.package = schema.package
    for element in tree.file_elements:
        if isinstance(element, ast.Import):
            file.dependency.append(element.name)
        elif isinstance(element, ast.Message):
            _message(file.message_type.add(), element, schema.package, schema, file.syntax)
        elif isinstance(element, ast.Enum):
            _enum(file.enum_type.add(), element)
    return base64.standard_b64encode(file.SerializeToString()).decode("ascii")


def _message(
    out: descriptor_pb2.DescriptorProto,
    message: ast.Message,
    scope: str,
    schema: ProtobufSchema,
    syntax: str,
) -> None:
    out.name = message.name
    name = f"{scope}.{message.name}" if scope else message.name
    synthetic: list[str] = []  # proto3 optional fields' oneofs, declared after the real ones
    for element in message.elements:
        if isinstance(element, ast.Field):
            _field(out.field.add(), element, name, schema, syntax, synthetic)
        elif isinstance(element, ast.MapField):
            _map_field(out, element, name, schema)
        elif isinstance(element, ast.OneOf):
            index = len(out.oneof_decl)
            out.oneof_decl.add(name=element.name)
            for member in element.elements:
                if isinstance(member, ast.Field):
                    added = out.field.add()
                    _field(added, member, name, schema, syntax, None)
                    added.oneof_index = index
        elif isinstance(element, ast.Message):
            _message(out.nested_type.add(), element, name, schema, syntax)
        elif isinstance(element, ast.Enum):
            _enum(out.enum_type.add(), element)
    for field_name in synthetic:
        index = len(out.oneof_decl)
        out.oneof_decl.add(name=f"_{field_name}")
        next(f for f in out.field if f.name == field_name).oneof_index = index


def _field(
    out: Any,  # a FieldDescriptorProto
    field: ast.Field,
    scope: str,
    schema: ProtobufSchema,
    syntax: str,
    synthetic: list[str] | None,
) -> None:
    out.name = field.name
    out.number = field.number
    cardinality = (field.cardinality or "").lower()
    if cardinality == "repeated":
        out.label = Field.LABEL_REPEATED
    else:
        out.label = _LABELS.get(cardinality, Field.LABEL_OPTIONAL)
    if cardinality == "optional" and syntax == "proto3" and synthetic is not None:
        out.proto3_optional = True
        synthetic.append(field.name)
    _set_type(out, field.type, scope, schema)
    _set_tags(out, field.options)


def _map_field(
    out: descriptor_pb2.DescriptorProto, field: ast.MapField, scope: str, schema: ProtobufSchema
) -> None:
    """A map field is a repeated field of a nested `<Name>Entry` message, as protoc
    writes it."""
    entry_name = "".join(part[:1].upper() + part[1:] for part in field.name.split("_")) + "Entry"
    entry = out.nested_type.add(name=entry_name)
    entry.options.map_entry = True
    key = entry.field.add(name="key", number=1, label=Field.LABEL_OPTIONAL)
    _set_type(key, field.key_type, scope, schema)
    value = entry.field.add(name="value", number=2, label=Field.LABEL_OPTIONAL)
    _set_type(value, field.value_type, scope, schema)
    added = out.field.add(name=field.name, number=field.number, label=Field.LABEL_REPEATED)
    added.type = Field.TYPE_MESSAGE
    added.type_name = f".{scope}.{entry_name}"
    _set_tags(added, field.options)


def _set_type(out: Any, type_name: str, scope: str, schema: ProtobufSchema) -> None:
    if type_name in _SCALARS:
        out.type = _SCALARS[type_name]
        return
    full = resolve_type(type_name, scope, schema.messages, schema.enums)
    is_enum = full in schema.enums or full in _WELL_KNOWN_ENUMS
    out.type = Field.TYPE_ENUM if is_enum else Field.TYPE_MESSAGE
    out.type_name = f".{full}"


def _set_tags(out: Any, options: list[Any]) -> None:
    tags = confluent_tags(options)
    if not tags:
        return
    # Meta { repeated string tags = 3 } in FieldOptions' extension 1088, written as bytes:
    # the extension is not registered in this process.
    meta = b"".join(_length_delimited(3, tag.encode()) for tag in sorted(tags))
    out.options.MergeFromString(_length_delimited(FIELD_META_NUMBER, meta))


def _length_delimited(number: int, data: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(data)) + data


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _enum(out: descriptor_pb2.EnumDescriptorProto, enum: ast.Enum) -> None:
    out.name = enum.name
    for value in enum.elements:
        if isinstance(value, ast.EnumValue):
            out.value.add(name=value.name, number=value.number)
