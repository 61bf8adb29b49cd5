"""JSON Schema compatibility, table-driven: each row is a change Confluent's registry
documents (the cases of its `SchemaDiff` tests, schemas written here), the change types it
reports and whether the change is compatible (a reader of the update reads what the
original allowed). Then the levels on top, `$ref` through references, and the bounds."""

from __future__ import annotations

import json
from typing import Any

import pytest

from contextplane.services.schema_registry.formats import parse
from contextplane.services.schema_registry.json_compat import COMPATIBLE, differences
from contextplane.services.schema_registry.json_schema import JsonSchema
from contextplane.services.schema_registry.modes import problems

S = {"type": "string"}
N = {"type": "number"}
I = {"type": "integer"}  # noqa: E741 - the JSON type's name


def obj(**properties: Any) -> dict[str, Any]:
    return {"type": "object", "properties": properties}


# (what changes, original, update, the change types reported, compatible)
CASES: list[tuple[str, Any, Any, set[str], bool]] = [
    ("anything to the empty schema", obj(a=S), {}, set(), True),
    ("false to anything", False, S, set(), True),
    ("id", {**S, "$id": "a"}, {**S, "$id": "b"}, {"ID_CHANGED"}, True),
    ("title", {**S, "title": "a"}, {**S, "title": "b"}, {"TITLE_CHANGED"}, True),
    (
        "description",
        {**S, "description": "a"},
        {**S, "description": "b"},
        {"DESCRIPTION_CHANGED"},
        True,
    ),
    ("default", {**S, "default": "a"}, {**S, "default": "b"}, {"DEFAULT_CHANGED"}, True),
    ("a simple type", S, N, {"TYPE_CHANGED"}, False),
    ("minLength up", {**S, "minLength": 1}, {**S, "minLength": 2}, {"MIN_LENGTH_INCREASED"}, False),
    (
        "minLength down",
        {**S, "minLength": 2},
        {**S, "minLength": 1},
        {"MIN_LENGTH_DECREASED"},
        True,
    ),
    ("minLength added", S, {**S, "minLength": 1}, {"MIN_LENGTH_ADDED"}, False),
    ("maxLength up", {**S, "maxLength": 1}, {**S, "maxLength": 2}, {"MAX_LENGTH_INCREASED"}, True),
    (
        "maxLength down",
        {**S, "maxLength": 2},
        {**S, "maxLength": 1},
        {"MAX_LENGTH_DECREASED"},
        False,
    ),
    ("maxLength removed", {**S, "maxLength": 2}, S, {"MAX_LENGTH_REMOVED"}, True),
    ("pattern removed", {**S, "pattern": "a"}, S, {"PATTERN_REMOVED"}, True),
    ("pattern added", S, {**S, "pattern": "a"}, {"PATTERN_ADDED"}, False),
    ("pattern changed", {**S, "pattern": "a"}, {**S, "pattern": "b"}, {"PATTERN_CHANGED"}, False),
    ("pattern the same", {**S, "pattern": "a"}, {**S, "pattern": "a"}, set(), True),
    ("maximum removed", {**N, "maximum": 5}, N, {"MAXIMUM_REMOVED"}, True),
    ("maximum up", {**N, "maximum": 5}, {**N, "maximum": 6}, {"MAXIMUM_INCREASED"}, True),
    ("maximum down", {**N, "maximum": 5}, {**N, "maximum": 4}, {"MAXIMUM_DECREASED"}, False),
    ("minimum removed", {**N, "minimum": 5}, N, {"MINIMUM_REMOVED"}, True),
    ("minimum up", {**N, "minimum": 5}, {**N, "minimum": 6}, {"MINIMUM_INCREASED"}, False),
    ("minimum down", {**N, "minimum": 5}, {**N, "minimum": 4}, {"MINIMUM_DECREASED"}, True),
    (
        "exclusiveMaximum up",
        {**N, "exclusiveMaximum": 5},
        {**N, "exclusiveMaximum": 6},
        {"EXCLUSIVE_MAXIMUM_INCREASED"},
        True,
    ),
    (
        "exclusiveMinimum up",
        {**N, "exclusiveMinimum": 5},
        {**N, "exclusiveMinimum": 6},
        {"EXCLUSIVE_MINIMUM_INCREASED"},
        False,
    ),
    ("multipleOf removed", {**N, "multipleOf": 10}, N, {"MULTIPLE_OF_REMOVED"}, True),
    (
        "multipleOf reduced",
        {**N, "multipleOf": 10},
        {**N, "multipleOf": 5},
        {"MULTIPLE_OF_REDUCED"},
        True,
    ),
    (
        "multipleOf expanded",
        {**N, "multipleOf": 0.5},
        {**N, "multipleOf": 10},
        {"MULTIPLE_OF_EXPANDED"},
        False,
    ),
    (
        "multipleOf changed",
        {**N, "multipleOf": 10},
        {**N, "multipleOf": 3},
        {"MULTIPLE_OF_CHANGED"},
        False,
    ),
    (
        "multipleOf equal at another scale",
        {**N, "multipleOf": 0.5},
        {**N, "multipleOf": 0.50},
        set(),
        True,
    ),
    ("number narrowed to integer", N, I, {"TYPE_NARROWED"}, False),
    ("integer widened to number", I, N, {"TYPE_EXTENDED"}, True),
    (
        "not: what is refused grows",
        {"not": S},
        {"not": {"anyOf": [S, N]}},
        {"NOT_TYPE_EXTENDED"},
        False,
    ),
    (
        "not: what is refused shrinks",
        {"not": {"anyOf": [S, N]}},
        {"not": S},
        {"NOT_TYPE_NARROWED"},
        True,
    ),
    (
        "an enum removed from a string",
        {**S, "enum": ["a", "b"]},
        S,
        {"PRODUCT_TYPE_NARROWED"},
        True,
    ),
    ("a const changed", obj(a={"const": 1}), obj(a={"const": 2}), {"ENUM_ARRAY_CHANGED"}, False),
    (
        "an enum changed",
        {**S, "enum": ["a", "b"]},
        {**S, "enum": ["a", "c"]},
        {"COMBINED_TYPE_SUBSCHEMAS_CHANGED"},
        False,
    ),
    (
        "an enum extended",
        {**S, "enum": ["a"]},
        {**S, "enum": ["a", "b"]},
        {"ENUM_ARRAY_EXTENDED"},
        True,
    ),
    ("an enum narrowed", {"enum": ["a", "b"]}, {"enum": ["a"]}, {"ENUM_ARRAY_NARROWED"}, False),
    (
        "a type list widened",
        {"type": ["string", "null"]},
        {"type": ["string", "null", "number"]},
        {"SUM_TYPE_EXTENDED"},
        True,
    ),
    ("a type list narrowed", {"type": ["string", "null"]}, S, {"TYPE_CHANGED"}, False),
    ("a type to a union", S, {"oneOf": [S, {"type": "null"}]}, {"SUM_TYPE_EXTENDED"}, True),
    (
        "branches changed",
        {"anyOf": [S, N]},
        {"anyOf": [S, {"type": "boolean"}]},
        {"COMBINED_TYPE_SUBSCHEMAS_CHANGED"},
        False,
    ),
    ("a branch added", {"anyOf": [S]}, {"anyOf": [S, N]}, {"SUM_TYPE_EXTENDED"}, True),
    ("a oneOf branch removed", {"oneOf": [S, N]}, {"oneOf": [S]}, {"SUM_TYPE_NARROWED"}, False),
    (
        "an allOf branch removed",
        {"allOf": [obj(a=S), {"required": ["a"]}]},
        {"allOf": [obj(a=S)]},
        {"PRODUCT_TYPE_NARROWED"},
        True,
    ),
    (
        "an allOf branch added",
        {"allOf": [obj(a=S)]},
        {"allOf": [obj(a=S), {"required": ["a"]}]},
        {"PRODUCT_TYPE_EXTENDED"},
        False,
    ),
    ("oneOf to anyOf", {"oneOf": [S, N]}, {"anyOf": [S, N]}, {"COMBINED_TYPE_EXTENDED"}, True),
    ("anyOf to oneOf", {"anyOf": [S, N]}, {"oneOf": [S, N]}, {"COMBINED_TYPE_CHANGED"}, False),
    (
        "oneOf to allOf, one branch each",
        {"oneOf": [S]},
        {"allOf": [S]},
        {"COMBINED_TYPE_EXTENDED"},
        True,
    ),
    ("oneOf to allOf", {"oneOf": [S, I]}, {"allOf": [S]}, {"COMBINED_TYPE_CHANGED"}, False),
    ("duplicate branches collapse", {"anyOf": [S, S]}, {"anyOf": [S]}, set(), True),
    ("a type to an allOf of it", S, {"allOf": [S]}, set(), True),
    ("a type to an allOf of another", S, {"allOf": [N]}, {"TYPE_CHANGED"}, False),
    (
        "a property removed from an open model",
        obj(a=S, b=S),
        obj(a=S),
        {"PROPERTY_REMOVED_FROM_OPEN_CONTENT_MODEL"},
        True,
    ),
    (
        "a property added to an open model",
        obj(a=S),
        obj(a=S, b=N),
        {"OPTIONAL_PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL"},
        False,
    ),
    (
        "a property renamed in an open model",
        obj(a=S),
        obj(b=S),
        {
            "PROPERTY_REMOVED_FROM_OPEN_CONTENT_MODEL",
            "OPTIONAL_PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL",
        },
        False,
    ),
    (
        "an empty property added to an open model",
        obj(a=S),
        obj(a=S, b={}),
        {"PROPERTY_WITH_EMPTY_SCHEMA_ADDED_TO_OPEN_CONTENT_MODEL"},
        True,
    ),
    ("a property's type", obj(a=S), obj(a=N), {"TYPE_CHANGED"}, False),
    (
        "a property added to a closed model",
        {**obj(a=S), "additionalProperties": False},
        {**obj(a=S, b=S), "additionalProperties": False},
        {"OPTIONAL_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL"},
        True,
    ),
    (
        "a required property added to a closed model",
        {**obj(a=S), "additionalProperties": False},
        {**obj(a=S, b=S), "required": ["b"], "additionalProperties": False},
        {"REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL"},
        False,
    ),
    (
        "a required property with a default added to a closed model",
        {**obj(a=S), "additionalProperties": False},
        {**obj(a=S, b={**S, "default": ""}), "required": ["b"], "additionalProperties": False},
        {"REQUIRED_PROPERTY_WITH_DEFAULT_ADDED_TO_UNOPEN_CONTENT_MODEL"},
        True,
    ),
    (
        "a property removed from a closed model",
        {**obj(a=S, b=S), "additionalProperties": False},
        {**obj(a=S), "additionalProperties": False},
        {"PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL"},
        False,
    ),
    (
        "a false property removed from a closed model",
        {**obj(a=S, b=False), "additionalProperties": False},
        {**obj(a=S), "additionalProperties": False},
        {"PROPERTY_WITH_FALSE_REMOVED_FROM_CLOSED_CONTENT_MODEL"},
        True,
    ),
    (
        "a property added, covered by patternProperties",
        {**obj(a=S), "additionalProperties": False, "patternProperties": {"^I_": I}},
        {**obj(a=S, I_1=N), "additionalProperties": False, "patternProperties": {"^I_": I}},
        {
            "TYPE_EXTENDED",
            "PROPERTY_ADDED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
            "OPTIONAL_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL",
        },
        True,
    ),
    (
        "a property added, covered by additionalProperties",
        {**obj(a=S), "additionalProperties": S},
        {**obj(a=S, b=S), "additionalProperties": S},
        {
            "PROPERTY_ADDED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
            "OPTIONAL_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL",
        },
        True,
    ),
    (
        "a property added, not covered by additionalProperties",
        {**obj(a=S), "additionalProperties": S},
        {**obj(a=S, b=N), "additionalProperties": S},
        {
            "TYPE_CHANGED",
            "PROPERTY_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
            "OPTIONAL_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL",
        },
        False,
    ),
    (
        "a property removed, covered by additionalProperties",
        {**obj(a=S, b=S), "additionalProperties": False},
        {**obj(a=S), "additionalProperties": S},
        {
            "PROPERTY_REMOVED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
            "ADDITIONAL_PROPERTIES_ADDED",
        },
        True,
    ),
    (
        "a property removed, not covered by additionalProperties",
        {**obj(a=S, b=N), "additionalProperties": False},
        {**obj(a=S), "additionalProperties": S},
        {
            "TYPE_CHANGED",
            "PROPERTY_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
            "ADDITIONAL_PROPERTIES_ADDED",
        },
        False,
    ),
    (
        "required removed",
        {**obj(a=S), "required": ["a"]},
        obj(a=S),
        {"REQUIRED_ATTRIBUTE_REMOVED"},
        True,
    ),
    (
        "required added",
        obj(a=S),
        {**obj(a=S), "required": ["a"]},
        {"REQUIRED_ATTRIBUTE_ADDED"},
        False,
    ),
    (
        "required added with a default",
        obj(a=S),
        {**obj(a={**S, "default": ""}), "required": ["a"]},
        {"REQUIRED_ATTRIBUTE_WITH_DEFAULT_ADDED", "DEFAULT_CHANGED"},
        True,
    ),
    (
        "additionalProperties false to true",
        {**obj(a=S), "additionalProperties": False},
        {**obj(a=S), "additionalProperties": True},
        {"ADDITIONAL_PROPERTIES_ADDED"},
        True,
    ),
    (
        "additionalProperties true to false",
        {**obj(a=S), "additionalProperties": True},
        {**obj(a=S), "additionalProperties": False},
        {"ADDITIONAL_PROPERTIES_REMOVED"},
        False,
    ),
    (
        "additionalProperties narrowed to a schema",
        obj(a=S),
        {**obj(a=S), "additionalProperties": S},
        {"ADDITIONAL_PROPERTIES_NARROWED"},
        False,
    ),
    (
        "additionalProperties' type",
        {**obj(a=S), "additionalProperties": S},
        {**obj(a=S), "additionalProperties": N},
        {"TYPE_CHANGED"},
        False,
    ),
    (
        "dependencies as arrays changed",
        {**obj(a=S, b=S), "dependencies": {"a": ["b"]}},
        {**obj(a=S, b=S), "dependencies": {"b": ["a"]}},
        {"DEPENDENCY_ARRAY_ADDED", "DEPENDENCY_ARRAY_REMOVED"},
        False,
    ),
    (
        "a dependency schema removed",
        {**obj(a=S), "dependencies": {"a": obj(b=S)}},
        obj(a=S),
        {"DEPENDENCY_SCHEMA_REMOVED"},
        True,
    ),
    (
        "maxProperties down",
        {"type": "object", "maxProperties": 3},
        {"type": "object", "maxProperties": 2},
        {"MAX_PROPERTIES_DECREASED"},
        False,
    ),
    (
        "minProperties down",
        {"type": "object", "minProperties": 3},
        {"type": "object", "minProperties": 2},
        {"MIN_PROPERTIES_DECREASED"},
        True,
    ),
    ("items added", {"type": "array"}, {"type": "array", "items": S}, {"SCHEMA_ADDED"}, False),
    ("items removed", {"type": "array", "items": S}, {"type": "array"}, {"SCHEMA_REMOVED"}, True),
    (
        "items' type",
        {"type": "array", "items": S},
        {"type": "array", "items": N},
        {"TYPE_CHANGED"},
        False,
    ),
    (
        "tuple items removed from an open model",
        {"type": "array", "items": [S, N]},
        {"type": "array"},
        {"ITEM_REMOVED_FROM_OPEN_CONTENT_MODEL"},
        True,
    ),
    (
        "a tuple item added to a closed model",
        {"type": "array", "items": [S], "additionalItems": False},
        {"type": "array", "items": [S, N], "additionalItems": False},
        {"ITEM_ADDED_TO_CLOSED_CONTENT_MODEL"},
        True,
    ),
    (
        "a tuple item added, not covered",
        {"type": "array", "items": [S], "additionalItems": S},
        {"type": "array", "items": [S, N], "additionalItems": S},
        {"TYPE_CHANGED", "ITEM_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL"},
        False,
    ),
    (
        "a tuple item removed, covered",
        {"type": "array", "items": [S, S], "additionalItems": S},
        {"type": "array", "items": [S], "additionalItems": S},
        {"ITEM_REMOVED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL"},
        True,
    ),
    (
        "additionalItems true to false",
        {"type": "array", "items": [S]},
        {"type": "array", "items": [S], "additionalItems": False},
        {"ADDITIONAL_ITEMS_REMOVED"},
        False,
    ),
    (
        "maxItems down",
        {"type": "array", "maxItems": 3},
        {"type": "array", "maxItems": 2},
        {"MAX_ITEMS_DECREASED"},
        False,
    ),
    (
        "minItems up",
        {"type": "array", "minItems": 1},
        {"type": "array", "minItems": 2},
        {"MIN_ITEMS_INCREASED"},
        False,
    ),
    (
        "uniqueItems removed",
        {"type": "array", "uniqueItems": True},
        {"type": "array"},
        {"UNIQUE_ITEMS_REMOVED"},
        True,
    ),
    (
        "uniqueItems added",
        {"type": "array"},
        {"type": "array", "uniqueItems": True},
        {"UNIQUE_ITEMS_ADDED"},
        False,
    ),
    (
        "a definition behind $ref changed",
        {"type": "array", "items": {"$ref": "#/definitions/x"}, "definitions": {"x": S}},
        {"type": "array", "items": {"$ref": "#/definitions/x"}, "definitions": {"x": N}},
        {"TYPE_CHANGED"},
        False,
    ),
    (
        "moved behind a $ref",
        obj(a=S),
        {**obj(a={"$ref": "#/definitions/x"}), "definitions": {"x": S}},
        set(),
        True,
    ),
    (
        "moved from behind a $ref",
        {**obj(a={"$ref": "#/definitions/x"}), "definitions": {"x": S}},
        obj(a=S),
        set(),
        True,
    ),
]


def _parse(document: Any) -> JsonSchema:
    parsed = parse("JSON", json.dumps(document))
    assert isinstance(parsed, JsonSchema)
    return parsed


@pytest.mark.parametrize(
    ("original", "update", "changes", "compatible"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_confluents_documented_changes(
    original: Any, update: Any, changes: set[str], compatible: bool
) -> None:
    found = differences(_parse(original), _parse(update))
    assert {change for change, _ in found} == changes
    assert all(change in COMPATIBLE for change, _ in found) == compatible
    # The levels on top: BACKWARD checks exactly this direction.
    assert (not problems("BACKWARD", _parse(update), [(1, _parse(original))])) == compatible


def test_forward_and_full_check_the_other_direction_and_both() -> None:
    narrow, wide = _parse(I), _parse(N)
    assert problems("BACKWARD", wide, [(1, narrow)]) == []
    assert problems("FORWARD", wide, [(1, narrow)]) != []
    assert problems("FORWARD", narrow, [(1, wide)]) == []
    assert problems("FULL", wide, [(1, narrow)]) != []
    assert problems("FULL", _parse({**N, "title": "t"}), [(1, wide)]) == []


def test_the_paths_of_changes_are_reported() -> None:
    found = differences(_parse(obj(a=obj(b=S))), _parse(obj(a=obj(b=N))))
    assert found == [("TYPE_CHANGED", "#/properties/a/properties/b")]


def test_recursive_schemas_compare_without_looping() -> None:
    node = {"type": "object", "properties": {"next": {"$ref": "#"}, "value": S}}
    assert differences(_parse(node), _parse(node)) == []
    changed = {"type": "object", "properties": {"next": {"$ref": "#"}, "value": N}}
    assert ("TYPE_CHANGED", "#/properties/value") in differences(_parse(node), _parse(changed))


def test_a_schema_with_another_type_is_incompatible() -> None:
    avro = parse("AVRO", '"string"')
    assert problems("BACKWARD", _parse(S), [(1, avro)]) == [
        "Incompatible because of different schema type",
        "{oldSchemaVersion: 1}",
        "{compatibility: 'BACKWARD'}",
    ]
