"""Data contracts: a schema's `metadata` (tags, properties, sensitive) and `ruleSet`
(migration, domain and encoding rules), read from a request or a `_schemas` record into
the form Confluent's registry writes (Jackson's entities: maps and sets sorted, a rule's
kind and mode defaulted, empty fields left out), and merged as Confluent merges them.

Both are plain JSON documents here: the registry stores and returns them and never runs a
rule (the clients do). A schema's identity includes them, so the same text with another
contract is another id, as in Confluent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from contextplane.services.schema_registry.errors import RegistryError, unprocessable

# Bounds (Confluent has none but its request size; these keep a SCHEMA record, a 512 KiB
# schema and its contract, under `_schemas`' default max.message.bytes of 1 MiB).
CONTRACT_BYTES_MAX = 256 * 1024  # metadata and ruleSet, as stored
METADATA_ENTRIES_MAX = 1000  # properties, tag paths, sensitive names: each
TAGS_PER_PATH_MAX = 100
RULES_PER_KIND_MAX = 100
RULE_ENTRIES_MAX = 100  # a rule's tags, its params
RULE_NAME_MAX = 256  # Confluent's Rule.NAME_MAX_LENGTH

RULE_KINDS = ("TRANSFORM", "CONDITION")
MIGRATION_MODES = ("UPGRADE", "DOWNGRADE", "UPDOWN")
DOMAIN_MODES = ("WRITE", "READ", "WRITEREAD")
RULE_LISTS = (  # the order Confluent writes them in, with the modes each may have
    ("migrationRules", MIGRATION_MODES),
    ("domainRules", DOMAIN_MODES),
    ("encodingRules", DOMAIN_MODES),
)
_RULE_MESSAGES = {
    "migrationRules": "Migration rules can only be UPGRADE, DOWNGRADE, UPDOWN",
    "domainRules": "Domain rules can only be WRITE, READ, WRITEREAD",
    "encodingRules": "Encoding rules can only be WRITE, READ, WRITEREAD",
}

Document = dict[str, Any]


@dataclass(frozen=True)
class Contract:
    """A schema's `metadata` and `ruleSet`. In a request, None is "not given" (a
    registration then takes the previous version's) and `{}` "none"."""

    metadata: Document | None = None
    rule_set: Document | None = None


NO_CONTRACT = Contract()


def contract_of(body: dict[str, Any]) -> Contract:
    """The `metadata` and `ruleSet` of a register or lookup body."""
    return Contract(metadata_field(body.get("metadata")), rule_set_field(body.get("ruleSet")))


def invalid_rule_set(message: str) -> RegistryError:
    """Confluent's RestInvalidRuleSetException."""
    return RegistryError(422, 42210, message)


def metadata_field(value: object, *, where: str = "metadata") -> Document | None:
    """`metadata` as Confluent writes it; None when absent, `{}` when given empty (which
    registers no metadata where an absent one inherits the previous version's; stored,
    empty is none). 422 for a wrong shape or size."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise unprocessable(f"'{where}' must be an object")
    tags = _string_map(value.get("tags"), f"{where}.tags", _tag_list)
    properties = _string_map(value.get("properties"), f"{where}.properties", _string)
    sensitive = _string_set(value.get("sensitive"), f"{where}.sensitive", METADATA_ENTRIES_MAX)
    found: Document = {}
    if tags:
        found["tags"] = tags
    if properties:
        found["properties"] = properties
    if sensitive:
        found["sensitive"] = sensitive
    return found


def rule_set_field(value: object, *, where: str = "ruleSet") -> Document | None:
    """`ruleSet` as Confluent writes it, checked as its `RuleSet.validate` checks it
    (42210) after Jackson read it (422 for a wrong shape); None when absent, `{}` when
    given empty."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise unprocessable(f"'{where}' must be an object")
    found: Document = {}
    names: set[str] = set()  # one namespace for all three lists, as Confluent's
    for field, modes in RULE_LISTS:
        rules = value.get(field)
        if rules is None:
            continue
        if not isinstance(rules, list):
            raise unprocessable(f"'{where}.{field}' must be a list")
        if len(rules) > RULES_PER_KIND_MAX:
            raise invalid_rule_set(f"More than {RULES_PER_KIND_MAX} {field}")
        read: list[Document] = []
        for raw in rules:  # in Confluent's order: the name's uniqueness, the rule, its mode
            name = raw.get("name") if isinstance(raw, dict) else None
            if name in names:
                raise invalid_rule_set(f"Found rule with duplicate name '{name}'")
            rule = _rule(raw, f"{where}.{field}")
            names.add(rule["name"])
            if rule["mode"] not in modes:
                raise invalid_rule_set(_RULE_MESSAGES[field])
            read.append(rule)
        if read:
            found[field] = read
    return found


def check_size(metadata: Document | None, rule_set: Document | None) -> None:
    if len(contract_key(metadata, rule_set).encode()) > CONTRACT_BYTES_MAX:
        raise unprocessable(f"metadata and ruleSet take more than {CONTRACT_BYTES_MAX} bytes")


def contract_key(metadata: Document | None, rule_set: Document | None) -> str:
    """What a schema's identity adds for its contract ("" for none): both documents are
    already in one order, so equal contracts give equal keys."""
    if metadata is None and rule_set is None:
        return ""
    return json.dumps([metadata, rule_set], separators=(",", ":"), ensure_ascii=False)


def merge_metadata(old: Document | None, new: Document | None) -> Document | None:
    """Confluent's `Metadata.mergeMetadata`: `new`'s tag paths and properties replace
    `old`'s of the same name, sensitive names are the union."""
    if old is None:
        return new
    if new is None:
        return old
    merged: Document = {}
    for field in ("tags", "properties"):
        entries = dict(old.get(field, {})) | new.get(field, {})
        if entries:
            merged[field] = dict(sorted(entries.items()))
    sensitive = sorted(set(old.get("sensitive", ())) | set(new.get("sensitive", ())))
    if sensitive:
        merged["sensitive"] = sensitive
    return merged or None


def merge_rule_sets(old: Document | None, new: Document | None) -> Document | None:
    """Confluent's `RuleSet.mergeRuleSets`: per list, `old`'s rules that `new` does not
    name again, then `new`'s."""
    if old is None:
        return new
    if new is None:
        return old
    merged: Document = {}
    for field, _ in RULE_LISTS:
        old_rules, new_rules = old.get(field, []), new.get(field, [])
        renamed = {rule["name"] for rule in new_rules}
        rules = [rule for rule in old_rules if rule["name"] not in renamed] + new_rules
        if rules:
            merged[field] = rules
    return merged or None


def properties_match(metadata: Document | None, wanted: dict[str, str]) -> bool:
    """`GET /subjects/{s}/metadata`: a schema with metadata whose properties include every
    pair of `wanted` (a schema without metadata never matches, as in Confluent)."""
    if metadata is None:
        return False
    properties = metadata.get("properties", {})
    return all(properties.get(key) == value for key, value in wanted.items())


def _rule(value: object, where: str) -> Document:
    if not isinstance(value, dict):
        raise unprocessable(f"a rule of '{where}' must be an object")
    kind = value.get("kind") or "TRANSFORM"
    mode = value.get("mode") or "WRITEREAD"
    if kind not in RULE_KINDS:
        raise unprocessable(f"rule kind {kind!r} is not one of {', '.join(RULE_KINDS)}")
    if mode not in MIGRATION_MODES + DOMAIN_MODES:
        raise unprocessable(f"rule mode {mode!r} is not a rule mode")
    name = _optional_string(value, "name", where)
    _check_name(name)
    rule_type = _optional_string(value, "type", where)
    if rule_type is None:
        raise invalid_rule_set("Missing rule type")
    rule: Document = {"name": name}
    doc = _optional_string(value, "doc", where)
    if doc:
        rule["doc"] = doc
    rule |= {"kind": kind, "mode": mode, "type": rule_type}
    tags = _string_set(value.get("tags"), f"{where}.tags", RULE_ENTRIES_MAX)
    if tags:
        rule["tags"] = tags
    params = _string_map(value.get("params"), f"{where}.params", _string, RULE_ENTRIES_MAX)
    if params:
        rule["params"] = params
    for field in ("expr", "onSuccess", "onFailure"):
        text = _optional_string(value, field, where)
        if text:
            if field != "expr" and "," in text and mode not in ("WRITEREAD", "UPDOWN"):
                raise invalid_rule_set("Multiple actions only valid with WRITEREAD and UPDOWN")
            rule[field] = text
    disabled = value.get("disabled", False)
    if not isinstance(disabled, bool):
        raise unprocessable(f"'disabled' of a rule of '{where}' must be a boolean")
    rule["disabled"] = disabled
    return rule


def _check_name(name: str | None) -> None:
    """Confluent's `Rule.validateName`: a letter or `_`, then letters, digits, `_`, `-`."""
    if name is None:
        raise invalid_rule_set("Missing rule name")
    if not name:
        raise invalid_rule_set("Empty rule name")
    if len(name) > RULE_NAME_MAX:
        raise invalid_rule_set("Rule name too long")
    if not (name[0].isalpha() or name[0] == "_"):
        raise invalid_rule_set(f"Illegal initial character in rule name: {name}")
    if any(not (c.isalnum() or c in "_-") for c in name[1:]):
        raise invalid_rule_set(f"Illegal character in rule name: {name}")


def _optional_string(value: Document, field: str, where: str) -> str | None:
    found = value.get(field)
    if found is not None and not isinstance(found, str):
        raise unprocessable(f"'{field}' of a rule of '{where}' must be a string")
    return found


def _string(value: object, where: str) -> str:
    """A map's string value; a number or boolean is its JSON text, as Jackson coerces
    scalars into a String."""
    if isinstance(value, bool | int | float):
        return json.dumps(value)
    if not isinstance(value, str):
        raise unprocessable(f"'{where}' must map names to strings")
    return value


def _tag_list(value: object, where: str) -> list[str]:
    return _string_set(value, where, TAGS_PER_PATH_MAX)


def _string_set(value: object, where: str, most: int) -> list[str]:
    """A JSON list of strings as Jackson reads a SortedSet: sorted, each once."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise unprocessable(f"'{where}' must be a list of strings")
    if len(value) > most:
        raise unprocessable(f"'{where}' has more than {most} entries")
    return sorted(set(value))


def _string_map(
    value: object, where: str, read: Any, most: int = METADATA_ENTRIES_MAX
) -> dict[str, Any]:
    """A JSON object as Jackson reads a SortedMap: keys sorted."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise unprocessable(f"'{where}' must be an object")
    if len(value) > most:
        raise unprocessable(f"'{where}' has more than {most} entries")
    return {key: read(value[key], f"{where}.{key}") for key in sorted(value)}
