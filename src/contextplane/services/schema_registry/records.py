"""The `_schemas` topic's keys and values, in the JSON Confluent's registry writes (and
Karapace reads): a reader of either can follow this topic, and this one theirs.

| key                                                     | value                        |
|---------------------------------------------------------|------------------------------|
| {"keytype":"SCHEMA","subject":s,"version":v,"magic":1}  | SchemaValue, or null (hard delete) |
| {"keytype":"CONFIG","subject":s or null,"magic":0}      | {"compatibilityLevel":L} or null |
| {"keytype":"MODE","subject":s or null,"magic":0}        | {"mode":M} or null           |
| {"keytype":"DELETE_SUBJECT","subject":s,"magic":0}      | {"subject":s,"version":v}    |
| {"keytype":"CLEAR_SUBJECT","subject":s,"magic":0}       | {"subject":s,"version":v}    |
| {"keytype":"NOOP","magic":0}                            | null                         |
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SchemaValue:
    subject: str
    version: int
    schema_id: int
    schema: str
    deleted: bool
    schema_type: str = "AVRO"

    def to_json(self) -> dict[str, Any]:
        value: dict[str, Any] = {
            "subject": self.subject,
            "version": self.version,
            "id": self.schema_id,
            "schema": self.schema,
            "deleted": self.deleted,
        }
        if self.schema_type != "AVRO":  # Confluent leaves AVRO, the default, unwritten
            value["schemaType"] = self.schema_type
        return value

    @staticmethod
    def from_json(value: dict[str, Any]) -> SchemaValue:
        return SchemaValue(
            subject=str(value["subject"]),
            version=int(value["version"]),
            schema_id=int(value["id"]),
            schema=str(value["schema"]),
            deleted=bool(value.get("deleted", False)),
            schema_type=str(value.get("schemaType") or "AVRO"),
        )


def schema_key(subject: str, version: int) -> dict[str, Any]:
    return {"keytype": "SCHEMA", "subject": subject, "version": version, "magic": 1}


def config_key(subject: str | None) -> dict[str, Any]:
    return {"keytype": "CONFIG", "subject": subject, "magic": 0}


def mode_key(subject: str | None) -> dict[str, Any]:
    return {"keytype": "MODE", "subject": subject, "magic": 0}


def delete_subject_key(subject: str) -> dict[str, Any]:
    return {"keytype": "DELETE_SUBJECT", "subject": subject, "magic": 0}


def encode(document: dict[str, Any] | None) -> bytes | None:
    if document is None:
        return None
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


def decode(raw: bytes | None) -> dict[str, Any] | None:
    """A key or value; None for a tombstone. ValueError for anything not a JSON object."""
    if raw is None:
        return None
    document = json.loads(raw)
    if not isinstance(document, dict):
        raise ValueError("not a JSON object")
    return document
