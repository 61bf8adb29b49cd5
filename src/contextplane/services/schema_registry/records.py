"""The `_schemas` topic's keys and values, in the JSON Confluent's registry writes (and
Karapace reads): a reader of either can follow this topic, and this one theirs.

| key                                                     | value                        |
|---------------------------------------------------------|------------------------------|
| {"keytype":"SCHEMA","subject":s,"version":v,"magic":1}  | SchemaValue, or null (hard delete) |
| {"keytype":"CONFIG","subject":s or null,"magic":0}      | ConfigValue, or null         |
| {"keytype":"MODE","subject":s or null,"magic":0}        | {"mode":M} or null           |
| {"keytype":"DELETE_SUBJECT","subject":s,"magic":0}      | {"subject":s,"version":v}    |
| {"keytype":"CLEAR_SUBJECT","subject":s,"magic":0}       | {"subject":s,"version":v}    |
| {"keytype":"NOOP","magic":0}                            | null                         |

A SchemaValue may carry its data contract (`metadata`, `ruleSet`); a ConfigValue has any
of `compatibilityLevel`, `compatibilityGroup` and the contract defaults and overrides.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from contextplane.services.schema_registry.references import Reference

# The topic's name, as Confluent's registry (kafkastore.topic) and Karapace default it.
SCHEMAS_TOPIC = "_schemas"
# Ids and versions are Java ints in Confluent's registry and its clients (an id is four
# bytes of every serialized payload): a record with one outside [1, INT32_MAX] is not read.
INT32_MAX = 2**31 - 1


@dataclass(frozen=True)
class SchemaValue:
    subject: str
    version: int
    schema_id: int
    schema: str
    deleted: bool
    schema_type: str = "AVRO"
    references: tuple[Reference, ...] = ()
    metadata: dict[str, Any] | None = None  # contracts.py: as Confluent writes them
    rule_set: dict[str, Any] | None = None

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
        if self.references:
            value["references"] = [reference.to_json() for reference in self.references]
        if self.metadata is not None:
            value["metadata"] = self.metadata
        if self.rule_set is not None:
            value["ruleSet"] = self.rule_set
        return value

    @staticmethod
    def from_json(value: dict[str, Any]) -> SchemaValue:
        """ValueError for a value with a field of the wrong type or out of range: another
        writer's record is read as strictly as Confluent's Jackson reads it."""
        deleted = value.get("deleted", False)
        if not isinstance(deleted, bool):
            raise ValueError(f"'deleted' is {deleted!r}, not a boolean")
        schema_type = value.get("schemaType") or "AVRO"
        if not isinstance(schema_type, str):
            raise ValueError(f"'schemaType' is {schema_type!r}, not a string")
        # Here, not at the top: references.py reads INT32_MAX from this module.
        from contextplane.services.schema_registry.contracts import (
            metadata_field,
            rule_set_field,
        )
        from contextplane.services.schema_registry.references import references_field

        references = references_field(value.get("references"))
        if any(reference.version < 1 for reference in references):
            raise ValueError("a stored reference names no version")
        return SchemaValue(
            subject=text_field(value, "subject"),
            version=int32_field(value, "version"),
            schema_id=int32_field(value, "id"),
            schema=text_field(value, "schema"),
            deleted=deleted,
            schema_type=schema_type,
            references=references,
            metadata=metadata_field(value.get("metadata")) or None,
            rule_set=rule_set_field(value.get("ruleSet")) or None,
        )


def text_field(document: dict[str, Any], name: str) -> str:
    found = document[name]
    if not isinstance(found, str):
        raise ValueError(f"{name!r} is {found!r}, not a string")
    return found


def int32_field(document: dict[str, Any], name: str) -> int:
    """A field that must be an integer in [1, INT32_MAX] (not a float, not a boolean)."""
    found = document[name]
    if isinstance(found, bool) or not isinstance(found, int) or not 1 <= found <= INT32_MAX:
        raise ValueError(f"{name!r} is {found!r}, not an integer in [1, {INT32_MAX}]")
    return found


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


def decode_record(
    raw_key: bytes | None, raw_value: bytes | None
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """A record's key and value (None: a tombstone); ValueError for a record without a
    key or with anything but JSON objects."""
    key = decode(raw_key)
    if key is None:
        raise ValueError("a record without a key")
    return key, decode(raw_value)


@dataclass(frozen=True)
class ConfigValue:
    """A CONFIG value: a subject's or the global settings. Each field may be unset
    (None); Confluent's `PUT /config` changes only the fields a request names."""

    compatibility_level: str | None = None
    compatibility_group: str | None = None
    default_metadata: dict[str, Any] | None = None
    override_metadata: dict[str, Any] | None = None
    default_rule_set: dict[str, Any] | None = None
    override_rule_set: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            name: getattr(self, attribute)
            for name, attribute in CONFIG_FIELDS
            if getattr(self, attribute) is not None
        }

    @staticmethod
    def from_json(value: dict[str, Any]) -> ConfigValue:
        """ValueError or a RegistryError for a field of the wrong type."""
        from contextplane.services.schema_registry.contracts import (
            metadata_field,
            rule_set_field,
        )

        level, group = value.get("compatibilityLevel"), value.get("compatibilityGroup")
        for name, found in (("compatibilityLevel", level), ("compatibilityGroup", group)):
            if found is not None and not isinstance(found, str):
                raise ValueError(f"{name!r} is {found!r}, not a string")
        return ConfigValue(
            level,
            group,
            metadata_field(value.get("defaultMetadata")) or None,
            metadata_field(value.get("overrideMetadata")) or None,
            rule_set_field(value.get("defaultRuleSet")) or None,
            rule_set_field(value.get("overrideRuleSet")) or None,
        )


# The CONFIG value's fields: (JSON name, attribute), in the order Confluent writes them.
CONFIG_FIELDS = (
    ("compatibilityLevel", "compatibility_level"),
    ("compatibilityGroup", "compatibility_group"),
    ("defaultMetadata", "default_metadata"),
    ("overrideMetadata", "override_metadata"),
    ("defaultRuleSet", "default_rule_set"),
    ("overrideRuleSet", "override_rule_set"),
)
