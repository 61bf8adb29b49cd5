"""Schema references: `{name, subject, version}`, a schema naming another subject's version
whose types it uses (an Avro named type, a JSON Schema `$ref`, a Protobuf import). A
reference's name is what the referring schema calls it: an Avro full name, the URL of a
`$ref`, an import path.

A reference must name a version that exists when the schema is registered, so references
form no cycle through the API; a `_schemas` record another writer made with one is
skipped by the fold, as its target does not exist yet when it is read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from contextplane.services.schema_registry.errors import invalid_schema
from contextplane.services.schema_registry.records import INT32_MAX

# Direct references of one schema.
REFERENCES_MAX = 100
# Longest chain of references below a schema (its own reference is depth 1).
REFERENCE_DEPTH_MAX = 16
# Distinct schemas a schema depends on, directly or not: what a parse of it may walk.
REFERENCE_CLOSURE_MAX = 1000
LATEST = -1


@dataclass(frozen=True, order=True)
class Reference:
    name: str
    subject: str
    version: int  # LATEST only in a request, before it is resolved

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "subject": self.subject, "version": self.version}


def references_field(value: object) -> tuple[Reference, ...]:
    """The `references` of a request body or a `_schemas` value, or 42201 saying what is
    wrong with it (Confluent answers an invalid reference as an invalid schema)."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise invalid_schema(f"'references' is {_short(value)}, not a list")
    if len(value) > REFERENCES_MAX:
        raise invalid_schema(f"more than {REFERENCES_MAX} references")
    found: list[Reference] = []
    for item in value:
        if not isinstance(item, dict):
            raise invalid_schema(f"Invalid reference: {_short(item)}")
        name, subject, version = item.get("name"), item.get("subject"), item.get("version")
        if not isinstance(name, str) or not name or not isinstance(subject, str) or not subject:
            raise invalid_schema(f"Invalid reference: {_short(item)}")
        if (
            isinstance(version, bool)
            or not isinstance(version, int)
            or not (version == LATEST or 1 <= version <= INT32_MAX)
        ):
            raise invalid_schema(f"Invalid reference version: {_short(item)}")
        found.append(Reference(name, subject, version))
    return tuple(found)


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 200 else text[:200] + "..."
