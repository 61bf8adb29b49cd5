"""Avro schemas: parsed and checked by fastavro, kept as a canonical string and as a tree
whose named types are written by full name (what the compatibility rules walk).

The canonical string is the identity of a schema: registering text that differs only in
whitespace, key order or the `{"type": "int"}` shorthand returns the same id; a change in
a doc, default or alias is a new schema, as in Confluent's registry (whose canonical string
is Avro's `Schema.toString()`). Parsing Canonical Form is not used: it drops defaults and
aliases, which change how data resolves.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import fastavro
import fastavro.schema

from contextplane.services.schema_registry.errors import invalid_schema
from contextplane.services.schema_registry.schema_text import load_json

PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
NAMED = frozenset({"record", "error", "enum", "fixed"})


@dataclass(frozen=True)
class AvroSchema:
    canonical: str
    # The schema with every named type's name and every reference to it written in full.
    tree: Any
    # Full name -> the definition (a dict in `tree`, or in a referenced schema's tree).
    names: dict[str, dict[str, Any]]
    # fastavro's named types, the referenced schemas' among them (what a referring schema
    # is parsed with).
    named: dict[str, Any]

    def resolve(self, node: Any) -> Any:
        """A reference by name becomes its definition; anything else is itself."""
        if isinstance(node, str) and node not in PRIMITIVES:
            return self.names[node]
        return node


def parse_avro(text: str, references: Sequence[AvroSchema] = ()) -> AvroSchema:
    """The schema in `text`, or RegistryError 42201 saying why it is not one. Named types
    of the `references` (schemas it refers to) may be used by name, as Java's parser
    reads a schema after the schemas it refers to."""
    document = load_json(text)
    named: dict[str, Any] = {}
    names: dict[str, dict[str, Any]] = {}
    for reference in references:
        named.update(reference.named)
        names.update(reference.names)
    try:
        fastavro.parse_schema(document, named, _write_hint=False, _force=True)
    except fastavro.schema.UnknownType as exc:
        raise invalid_schema(f"Undefined name: {exc}") from None
    except fastavro.schema.SchemaParseException as exc:
        raise invalid_schema(str(exc)) from None
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise invalid_schema(f"{type(exc).__name__}: {exc}") from None
    shorthand = _shorthand(document)
    tree = _qualify(shorthand, "", names)
    _check_rules(tree)
    canonical = json.dumps(shorthand, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return AvroSchema(canonical=canonical, tree=tree, names=names, named=named)


def _shorthand(node: Any) -> Any:
    """`{"type": "int"}` written as `"int"`, everywhere: Avro's own writer does the same."""
    if isinstance(node, list):
        return [_shorthand(item) for item in node]
    if not isinstance(node, dict):
        return node
    if set(node) == {"type"} and isinstance(node["type"], str | list | dict):
        return _shorthand(node["type"])
    return {key: _shorthand(value) for key, value in node.items()}


def full_name(name: str, namespace: str) -> str:
    if "." in name or not namespace:
        return name
    return f"{namespace}.{name}"


def _namespace_of(node: dict[str, Any], enclosing: str) -> str:
    name = str(node["name"])
    if "." in name:
        return name.rsplit(".", 1)[0]
    namespace = node.get("namespace")
    return enclosing if namespace is None else str(namespace)


def _qualify(node: Any, namespace: str, names: dict[str, dict[str, Any]]) -> Any:
    """A copy of `node` with named types and references to them by full name."""
    if isinstance(node, str):
        return node if node in PRIMITIVES else full_name(node, namespace)
    if isinstance(node, list):
        return [_qualify(branch, namespace, names) for branch in node]
    kind = node["type"]
    if not isinstance(kind, str) or kind not in NAMED | {"array", "map"}:
        # A primitive with properties (a logical type): the primitive is what resolves.
        return _qualify(kind, namespace, names)
    if kind == "array":
        return {"type": "array", "items": _qualify(node["items"], namespace, names)}
    if kind == "map":
        return {"type": "map", "values": _qualify(node["values"], namespace, names)}
    inner = _namespace_of(node, namespace)
    name = full_name(str(node["name"]).rsplit(".", 1)[-1], inner)
    definition: dict[str, Any] = {
        "type": "record" if kind == "error" else kind,
        "name": name,
        "aliases": [full_name(alias, inner) for alias in _names(node, "aliases", [])],
    }
    if name in names:  # fastavro lets a referenced schema's type be defined again
        raise invalid_schema(f"Can't redefine: {name}")
    names[name] = definition  # before the fields: they may refer to it (recursion)
    if kind in ("record", "error"):
        fields = node.get("fields")  # fastavro lets a record without fields through
        if not isinstance(fields, list):
            raise invalid_schema(f"'fields' of {name} is not a list")
        definition["fields"] = [
            {
                "name": field["name"],
                "aliases": _names(field, "aliases", []),
                "has_default": "default" in field,
                "type": _qualify(field["type"], inner, names),
            }
            for field in fields
        ]
    elif kind == "enum":
        definition["symbols"] = _names(node, "symbols")
        definition["has_default"] = "default" in node
    else:
        size = node["size"]
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise invalid_schema(f"the size of {name} is {size!r}, not an integer >= 0")
        definition["size"] = size
    return definition


def _names(node: dict[str, Any], key: str, *default: list[str]) -> list[str]:
    """A list of names (aliases, symbols), each an Avro name (dotted for an alias)."""
    found = node.get(key, *default) if default else node[key]
    if not isinstance(found, list):
        raise invalid_schema(f"{key!r} is {found!r}, not a list")
    for name in found:
        if not isinstance(name, str):
            raise invalid_schema(f"{key!r} holds {name!r}, not a name")
        for part in name.split("."):
            _check_name(part)
    return found


def _check_rules(node: Any) -> None:
    """What Java's Avro parser refuses and fastavro lets through: a union in a union, two
    branches of one type, two fields of one name, a name that is not an Avro name."""
    if isinstance(node, list):
        seen: set[str] = set()
        for branch in node:
            if isinstance(branch, list):
                raise invalid_schema("Nested union")
            key = branch if isinstance(branch, str) else branch.get("name", branch["type"])
            if key in seen:
                raise invalid_schema(f"Duplicate in union: {key}")
            seen.add(key)
            _check_rules(branch)
        return
    if not isinstance(node, dict):
        return
    kind = node["type"]
    if kind == "array":
        _check_rules(node["items"])
    elif kind == "map":
        _check_rules(node["values"])
    else:
        for part in node["name"].split("."):
            _check_name(part)
    if kind == "record":
        fields: set[str] = set()
        for field in node["fields"]:
            _check_name(field["name"])
            if field["name"] in fields:
                raise invalid_schema(f"Duplicate field {field['name']} in record {node['name']}")
            fields.add(field["name"])
            _check_rules(field["type"])
    elif kind == "enum":
        for symbol in node["symbols"]:
            _check_name(symbol)


def _check_name(name: object) -> None:
    """Avro's name rule as Java reads it: a letter or `_`, then letters, digits, `_`."""
    valid = (
        isinstance(name, str)
        and name != ""
        and (name[0].isalpha() or name[0] == "_")
        and all(c.isalnum() or c == "_" for c in name)
    )
    if not valid:
        raise invalid_schema(f"Illegal name: {name!r}")


def simple_name(name: str) -> str:
    return name.rsplit(".", 1)[-1]
