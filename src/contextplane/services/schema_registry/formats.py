"""The schema types the registry serves: one parser and one compatibility rule each, behind
two functions the registry and the fold call without knowing the type."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeAlias

from contextplane.services.schema_registry import (
    avro_compat,
    errors,
    json_compat,
    protobuf_compat,
)
from contextplane.services.schema_registry.avro_schema import AvroSchema, parse_avro
from contextplane.services.schema_registry.json_schema import JsonSchema, parse_json_schema
from contextplane.services.schema_registry.protobuf_schema import ProtobufSchema, parse_protobuf

SCHEMA_TYPES = ("AVRO", "JSON", "PROTOBUF")
Parsed: TypeAlias = AvroSchema | JsonSchema | ProtobufSchema


def parse(schema_type: str, text: str, references: Sequence[tuple[str, Parsed]] = ()) -> Parsed:
    """`text` as a schema of `schema_type`; `references` are the schemas it refers to,
    already parsed, each with the name it knows it by, in the order of its references.
    42201 saying why it is not one."""
    if schema_type == "AVRO":
        avro = [parsed for _, parsed in references if isinstance(parsed, AvroSchema)]
        if len(avro) != len(references):
            raise errors.invalid_schema("an Avro schema may refer only to Avro schemas")
        return parse_avro(text, avro)
    if schema_type == "JSON":
        json_schemas = [(n, p) for n, p in references if isinstance(p, JsonSchema)]
        if len(json_schemas) != len(references):
            raise errors.invalid_schema("a JSON schema may refer only to JSON schemas")
        return parse_json_schema(text, json_schemas)
    if schema_type == "PROTOBUF":
        imports = [(n, p) for n, p in references if isinstance(p, ProtobufSchema)]
        if len(imports) != len(references):
            raise errors.invalid_schema("a Protobuf schema may import only Protobuf schemas")
        return parse_protobuf(text, imports)
    raise errors.invalid_schema(f"schema type {schema_type} is not supported")


def reader_problems(reader: Parsed, writer: Parsed) -> list[str]:
    """Why data written with `writer` cannot be read with `reader`; empty when it can."""
    if isinstance(reader, AvroSchema) and isinstance(writer, AvroSchema):
        return [str(issue) for issue in avro_compat.incompatibilities(reader, writer)]
    if isinstance(reader, JsonSchema) and isinstance(writer, JsonSchema):
        return [str(issue) for issue in json_compat.incompatibilities(reader, writer)]
    if isinstance(reader, ProtobufSchema) and isinstance(writer, ProtobufSchema):
        return [str(issue) for issue in protobuf_compat.incompatibilities(reader, writer)]
    return ["Incompatible because of different schema type"]
