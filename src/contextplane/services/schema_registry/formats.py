"""The schema types the registry serves: one parser and one compatibility rule each, behind
two functions the registry and the fold call without knowing the type."""

from __future__ import annotations

from collections.abc import Sequence

from contextplane.services.schema_registry import errors
from contextplane.services.schema_registry.avro_compat import incompatibilities
from contextplane.services.schema_registry.avro_schema import AvroSchema, parse_avro

SCHEMA_TYPES = ("AVRO",)
Parsed = AvroSchema


def parse(schema_type: str, text: str, references: Sequence[tuple[str, Parsed]] = ()) -> Parsed:
    """`text` as a schema of `schema_type`; `references` are the schemas it refers to,
    already parsed, each with the name it knows it by, in the order of its references.
    42201 saying why it is not one."""
    if schema_type == "AVRO":
        avro = [parsed for _, parsed in references if isinstance(parsed, AvroSchema)]
        if len(avro) != len(references):
            raise errors.invalid_schema("an Avro schema may refer only to Avro schemas")
        return parse_avro(text, avro)
    raise errors.invalid_schema(f"schema type {schema_type} is not supported")


def reader_problems(reader: Parsed, writer: Parsed) -> list[str]:
    """Why data written with `writer` cannot be read with `reader`; empty when it can."""
    if type(reader) is not type(writer):
        return ["Incompatible because of different schema type"]
    return [str(issue) for issue in incompatibilities(reader, writer)]
