"""Avro schemas as the registry keeps them: the canonical string (the identity of a
schema) and what is refused as invalid (42201)."""

from __future__ import annotations

import json

import pytest

from contextplane.services.schema_registry.avro_schema import parse_avro
from contextplane.services.schema_registry.errors import RegistryError
from contextplane.services.schema_registry.schema_text import SCHEMA_BYTES_MAX, SCHEMA_DEPTH_MAX

USER = {
    "type": "record",
    "name": "User",
    "namespace": "acme",
    "fields": [{"name": "a", "type": "int"}],
}


def test_whitespace_key_order_and_shorthand_do_not_change_the_canonical_string() -> None:
    spaced = json.dumps(USER, indent=4)
    reordered = json.dumps(
        {
            "fields": [{"type": {"type": "int"}, "name": "a"}],
            "namespace": "acme",
            "name": "User",
            "type": "record",
        }
    )
    assert parse_avro(spaced).canonical == parse_avro(json.dumps(USER)).canonical
    assert parse_avro(reordered).canonical == parse_avro(json.dumps(USER)).canonical


@pytest.mark.parametrize(
    "change",
    [
        {"doc": "a user"},
        {"aliases": ["Person"]},
        {"fields": [{"name": "a", "type": "int", "default": 1}]},
        {"fields": [{"name": "a", "type": "long"}]},
        {"namespace": "other"},
    ],
)
def test_a_change_that_matters_changes_the_canonical_string(change: dict[str, object]) -> None:
    assert (
        parse_avro(json.dumps({**USER, **change})).canonical
        != parse_avro(json.dumps(USER)).canonical
    )


def test_the_canonical_string_is_a_schema_with_the_same_canonical_string() -> None:
    canonical = parse_avro(json.dumps(USER, indent=2)).canonical
    assert parse_avro(canonical).canonical == canonical


def test_named_types_are_known_by_full_name() -> None:
    schema = parse_avro(
        json.dumps(
            {
                "type": "record",
                "name": "Outer",
                "namespace": "acme",
                "fields": [
                    {"name": "inner", "type": {"type": "fixed", "name": "Id", "size": 4}},
                    {"name": "again", "type": "Id"},
                    {"name": "other", "type": {"type": "enum", "name": "x.Kind", "symbols": ["A"]}},
                ],
            }
        )
    )
    assert set(schema.names) == {"acme.Outer", "acme.Id", "x.Kind"}
    assert schema.tree["fields"][1]["type"] == "acme.Id"


def field_int_defaulting(default: object) -> dict[str, object]:
    return {"name": "a", "type": "int", "default": default}


@pytest.mark.parametrize(
    "text, reason",
    [
        ("{not json", "not JSON"),
        ('{"type": "record", "fields": []}', ""),
        ('{"type": "nosuchtype"}', ""),
        ('{"type": "record", "name": "R", "fields": [{"name": "a", "type": "Missing"}]}', ""),
        ('{"type": "enum", "name": "E", "symbols": ["A", "A"]}', "unique"),
        (
            json.dumps({"type": "record", "name": "R", "fields": [field_int_defaulting("x")]}),
            "Default",
        ),
        ('{"type": "fixed", "name": "F"}', ""),
        ("[" * (SCHEMA_DEPTH_MAX + 1) + '"int"' + "]" * (SCHEMA_DEPTH_MAX + 1), "nested deeper"),
        ("[" * 100_000 + "]" * 100_000, "nested deeper"),
        (json.dumps({**USER, "doc": "x" * SCHEMA_BYTES_MAX}), "larger than"),
        ('["null", ["int", "long"]]', "Nested union"),
        ('["int", "string", "int"]', "Duplicate in union: int"),
        (json.dumps([USER, "acme.User"]), "Duplicate in union: acme.User"),
        (json.dumps({**USER, "fields": [USER["fields"][0]] * 2}), "Duplicate field a"),
        (json.dumps({**USER, "name": "1User"}), "Illegal name"),
        (json.dumps({**USER, "namespace": "acme.-x"}), "Illegal name"),
        (json.dumps({**USER, "fields": [{"name": "a-b", "type": "int"}]}), "Illegal name"),
        ('{"type": "enum", "name": "E", "symbols": ["A", "B C"]}', "symbol"),
        (
            '{"type": "record", "name": "R", "fields": [{"name": "a", "type": "double", '
            '"default": NaN}]}',
            "NaN",
        ),
        ('{"type": "fixed", "name": "F", "size": 1e999}', "range"),
        ('{"type": "fixed", "name": "F", "size": -1}', "size"),
        ('{"type": "fixed", "name": "F", "size": "8"}', "size"),
        ('{"type": "fixed", "name": "F", "size": true}', "size"),
        ('{"type": "record", "name": "R", "fields": {}}', "not a list"),
        ('{"type": "record", "name": "R"}', "not a list"),
        ('{"type": "enum", "name": "E", "symbols": "AB"}', "not a list"),
        ('{"type": "record", "name": "R", "aliases": "x", "fields": []}', "not a list"),
        ('{"type": "record", "name": "R", "aliases": ["1x"], "fields": []}', "Illegal name"),
    ],
    ids=[
        "not-json",
        "no-name",
        "unknown-type",
        "unknown-reference",
        "repeated-symbol",
        "bad-default",
        "no-size",
        "deep",
        "very-deep",
        "huge",
        "nested-union",
        "repeated-union-branch",
        "repeated-named-union-branch",
        "repeated-field",
        "bad-record-name",
        "bad-namespace",
        "bad-field-name",
        "bad-symbol",
        "nan",
        "infinite",
        "negative-size",
        "size-as-string",
        "size-as-boolean",
        "fields-not-a-list",
        "no-fields",
        "symbols-not-a-list",
        "aliases-not-a-list",
        "bad-alias",
    ],
)
def test_invalid_schemas_are_42201(text: str, reason: str) -> None:
    with pytest.raises(RegistryError) as raised:
        parse_avro(text)
    assert (raised.value.status, raised.value.error_code) == (422, 42201)
    assert reason in raised.value.message


def test_names_are_avro_names_in_any_script() -> None:
    """Java's rule: a letter (any script) or `_`, then letters, digits and `_`."""
    parse_avro(json.dumps({**USER, "name": "_Ünïcode1", "namespace": "ä.b_2"}))
