"""The DEK registry's records in its compacted topic, `_dek_registry_keys` (the name
Confluent's registry gives its own): a KEK or a DEK per key, the latest value winning,
null deleting it for good.

| key                                                                 | value        |
|---------------------------------------------------------------------|--------------|
| {"keytype":"KEK","name":n,"magic":0}                                | Kek, or null |
| {"keytype":"DEK","kekName":k,"subject":s,"version":v,"algorithm":a, | Dek, or null |
|  "magic":0}                                                         |              |

The values are the JSON the REST API answers with (plus `deleted` and `ts`), so a record
reads as what it serves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from contextplane.services.schema_registry.records import int32_field, text_field

DEK_TOPIC = "_dek_registry_keys"
# Confluent's DekFormat; AES256_GCM is the algorithm a request without one means.
ALGORITHMS = ("AES128_GCM", "AES256_GCM", "AES256_SIV")
DEFAULT_ALGORITHM = "AES256_GCM"


@dataclass(frozen=True)
class Kek:
    name: str
    kms_type: str
    kms_key_id: str
    kms_props: dict[str, str] = field(default_factory=dict)
    doc: str | None = None
    shared: bool = False
    ts: int = 0
    deleted: bool = False

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "name": self.name,
            "kmsType": self.kms_type,
            "kmsKeyId": self.kms_key_id,
            "kmsProps": self.kms_props,
        }
        if self.doc is not None:
            body["doc"] = self.doc
        return body | {"shared": self.shared, "ts": self.ts, "deleted": self.deleted}

    def same_key(self, other: Kek) -> bool:
        """What a second create may repeat and be answered with the first (Confluent's)."""
        return (self.kms_type, self.kms_key_id, self.kms_props, self.doc, self.shared) == (
            other.kms_type, other.kms_key_id, other.kms_props, other.doc, other.shared,
        )  # fmt: skip

    @staticmethod
    def from_json(value: dict[str, Any]) -> Kek:
        """ValueError for a stored value of the wrong shape."""
        props = value.get("kmsProps") or {}
        if not isinstance(props, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in props.items()
        ):
            raise ValueError("'kmsProps' is not an object of strings")
        doc = value.get("doc")
        if doc is not None and not isinstance(doc, str):
            raise ValueError("'doc' is not a string")
        return Kek(
            name=text_field(value, "name"),
            kms_type=text_field(value, "kmsType"),
            kms_key_id=text_field(value, "kmsKeyId"),
            kms_props=props,
            doc=doc,
            shared=_bool(value, "shared"),
            ts=_timestamp(value),
            deleted=_bool(value, "deleted"),
        )


@dataclass(frozen=True)
class Dek:
    kek_name: str
    subject: str
    version: int
    algorithm: str
    encrypted_key_material: str
    ts: int = 0
    deleted: bool = False

    @property
    def identity(self) -> tuple[str, str, str]:
        """The DEK's versions are counted per (KEK, subject, algorithm)."""
        return (self.kek_name, self.subject, self.algorithm)

    def to_json(self) -> dict[str, Any]:
        return {
            "kekName": self.kek_name,
            "subject": self.subject,
            "version": self.version,
            "algorithm": self.algorithm,
            "encryptedKeyMaterial": self.encrypted_key_material,
            "ts": self.ts,
            "deleted": self.deleted,
        }

    @staticmethod
    def from_json(value: dict[str, Any]) -> Dek:
        algorithm = text_field(value, "algorithm")
        if algorithm not in ALGORITHMS:
            raise ValueError(f"'algorithm' is {algorithm!r}")
        return Dek(
            kek_name=text_field(value, "kekName"),
            subject=text_field(value, "subject"),
            version=int32_field(value, "version"),
            algorithm=algorithm,
            encrypted_key_material=text_field(value, "encryptedKeyMaterial"),
            ts=_timestamp(value),
            deleted=_bool(value, "deleted"),
        )


def kek_key(name: str) -> dict[str, Any]:
    return {"keytype": "KEK", "name": name, "magic": 0}


def dek_key(dek: Dek) -> dict[str, Any]:
    return {
        "keytype": "DEK",
        "kekName": dek.kek_name,
        "subject": dek.subject,
        "version": dek.version,
        "algorithm": dek.algorithm,
        "magic": 0,
    }


def _bool(value: dict[str, Any], name: str) -> bool:
    found = value.get(name, False)
    if not isinstance(found, bool):
        raise ValueError(f"{name!r} is {found!r}, not a boolean")
    return found


def _timestamp(value: dict[str, Any]) -> int:
    found = value.get("ts", 0)
    if isinstance(found, bool) or not isinstance(found, int):
        raise ValueError(f"'ts' is {found!r}, not an integer")
    return found
