"""Avro compatibility per level, with the outcomes Confluent documents ("Schema Evolution
and Compatibility": which changes each level allows) and Avro's resolution rules."""

from __future__ import annotations

import json
from typing import Any

import pytest

from contextplane.services.schema_registry.avro_compat import _Checker, incompatibilities
from contextplane.services.schema_registry.avro_schema import parse_avro
from contextplane.services.schema_registry.modes import LEVELS, problems


def record(*fields: dict[str, Any], name: str = "User", **extra: Any) -> str:
    return json.dumps({"type": "record", "name": name, "fields": list(fields), **extra})


def field(name: str, kind: Any, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": kind, **extra}


A = field("a", "int")
B_REQUIRED = field("b", "string")
B_OPTIONAL = field("b", "string", default="x")
V1 = record(A)
V_ADD_REQUIRED = record(A, B_REQUIRED)
V_ADD_OPTIONAL = record(A, B_OPTIONAL)
V_A_ONLY_OPTIONAL = record(field("a", "int", default=0))
V_EMPTY = record()

ENUM_AB = json.dumps({"type": "enum", "name": "E", "symbols": ["A", "B"]})
ENUM_ABC = json.dumps({"type": "enum", "name": "E", "symbols": ["A", "B", "C"]})
ENUM_AB_DEFAULT = json.dumps({"type": "enum", "name": "E", "symbols": ["A", "B"], "default": "A"})

LIST = json.dumps(
    {
        "type": "record",
        "name": "Node",
        "fields": [{"name": "value", "type": "int"}, {"name": "next", "type": ["null", "Node"]}],
    }
)
LIST_LONG_WITH_LABEL = json.dumps(
    {
        "type": "record",
        "name": "Node",
        "fields": [
            {"name": "value", "type": "long"},
            {"name": "next", "type": ["null", "Node"]},
            {"name": "label", "type": "string", "default": ""},
        ],
    }
)

# (case, old schema, new schema, levels under which new may follow old)
SINGLE_STEP: list[tuple[str, str, str, set[str]]] = [
    ("delete a field", V_ADD_REQUIRED, V1, {"BACKWARD", "NONE"}),
    ("delete a field with a default", V_ADD_OPTIONAL, V1, {"BACKWARD", "FORWARD", "FULL", "NONE"}),
    ("add a field without default", V1, V_ADD_REQUIRED, {"FORWARD", "NONE"}),
    ("add a field with a default", V1, V_ADD_OPTIONAL, {"BACKWARD", "FORWARD", "FULL", "NONE"}),
    ("the same schema", V1, V1, set(LEVELS)),
    (
        "int promoted to long",
        record(field("a", "int")),
        record(field("a", "long")),
        {"BACKWARD", "NONE"},
    ),
    (
        "long narrowed to int",
        record(field("a", "long")),
        record(field("a", "int")),
        {"FORWARD", "NONE"},
    ),
    (
        "int to double",
        record(field("a", "int")),
        record(field("a", "double")),
        {"BACKWARD", "NONE"},
    ),
    ("string to bytes", record(field("a", "string")), record(field("a", "bytes")), set(LEVELS)),
    ("int to string", record(field("a", "int")), record(field("a", "string")), {"NONE"}),
    ("add an enum symbol", ENUM_AB, ENUM_ABC, {"BACKWARD", "NONE"}),
    ("remove an enum symbol", ENUM_ABC, ENUM_AB, {"FORWARD", "NONE"}),
    (
        "remove a symbol, reader default",
        ENUM_ABC,
        ENUM_AB_DEFAULT,
        {"BACKWARD", "FORWARD", "FULL", "NONE"},
    ),
    (
        "string widened to a union with null",
        record(field("a", "string")),
        record(field("a", ["null", "string"])),
        {"BACKWARD", "NONE"},
    ),
    (
        "a union narrowed to one branch",
        record(field("a", ["null", "string"])),
        record(field("a", "string")),
        {"FORWARD", "NONE"},
    ),
    ("record renamed", V1, record(A, name="Person"), {"NONE"}),
    (
        "record renamed with an alias",
        V1,
        record(A, name="Person", aliases=["User"]),
        {"BACKWARD", "NONE"},
    ),
    (
        "field renamed with an alias",
        V1,
        record(field("c", "int", aliases=["a"])),
        {"BACKWARD", "NONE"},
    ),
    (
        "fixed size changed",
        json.dumps({"type": "fixed", "name": "F", "size": 16}),
        json.dumps({"type": "fixed", "name": "F", "size": 8}),
        {"NONE"},
    ),
    (
        "array items promoted",
        json.dumps({"type": "array", "items": "int"}),
        json.dumps({"type": "array", "items": "long"}),
        {"BACKWARD", "NONE"},
    ),
    (
        "map values changed",
        json.dumps({"type": "map", "values": "int"}),
        json.dumps({"type": "map", "values": "boolean"}),
        {"NONE"},
    ),
    ("a recursive type with itself", LIST, LIST, set(LEVELS)),
    ("a recursive type, promoted and extended", LIST, LIST_LONG_WITH_LABEL, {"BACKWARD", "NONE"}),
    ("record to array", V1, json.dumps({"type": "array", "items": "int"}), {"NONE"}),
]


def _may_follow(level: str, old: str, new: str) -> bool:
    return not problems(level, parse_avro(new), [(1, parse_avro(old))])


@pytest.mark.parametrize(
    "case, old, new, allowed", SINGLE_STEP, ids=[case[0] for case in SINGLE_STEP]
)
def test_one_step_per_level(case: str, old: str, new: str, allowed: set[str]) -> None:
    # With one earlier version, a transitive level decides as its plain form.
    expected = {level for level in LEVELS if level.removesuffix("_TRANSITIVE") in allowed}
    found = {level for level in LEVELS if _may_follow(level, old, new)}
    assert found == expected


# (case, versions oldest first, new, levels under which new may follow all of them)
HISTORIES: list[tuple[str, list[str], str, set[str]]] = [
    # v3 reads v2 (b is in it) but not v1 (b is missing there and has no default); v1
    # and v2 both read v3.
    (
        "a default dropped after it was added",
        [V1, V_ADD_OPTIONAL],
        V_ADD_REQUIRED,
        {"BACKWARD", "FORWARD", "FORWARD_TRANSITIVE", "FULL", "NONE"},
    ),
    # v1 reads v2 (b defaulted) and v2 reads v3 (b defaulted), but v1 cannot read v3.
    (
        "a required field made optional, then deleted",
        [V_ADD_REQUIRED, V_ADD_OPTIONAL],
        V1,
        {"BACKWARD", "BACKWARD_TRANSITIVE", "FORWARD", "FULL", "NONE"},
    ),
    (
        "optional fields only",
        [V_A_ONLY_OPTIONAL, record(field("a", "int", default=0), B_OPTIONAL)],
        record(B_OPTIONAL),
        set(LEVELS),
    ),
]


@pytest.mark.parametrize(
    "case, history, new, allowed", HISTORIES, ids=[case[0] for case in HISTORIES]
)
def test_transitive_levels_check_every_version(
    case: str, history: list[str], new: str, allowed: set[str]
) -> None:
    earlier = [(number, parse_avro(text)) for number, text in enumerate(history, start=1)]
    found = {level for level in LEVELS if not problems(level, parse_avro(new), earlier)}
    assert found == allowed


def test_the_reason_names_the_field_and_the_version() -> None:
    found = problems("BACKWARD", parse_avro(V_ADD_REQUIRED), [(3, parse_avro(V1))])
    assert "READER_FIELD_MISSING_DEFAULT_VALUE" in found[0]
    assert "'b'" in found[0]
    assert "{oldSchemaVersion: 3}" in found
    assert "{compatibility: 'BACKWARD'}" in found


def test_no_earlier_version_is_always_compatible() -> None:
    assert all(not problems(level, parse_avro(V1), []) for level in LEVELS)


def _avro_oracle(reader: str, writer: str) -> bool:
    """Apache Avro's own Python port of Java's SchemaCompatibility."""
    from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType
    from avro.schema import parse

    result = ReaderWriterCompatibilityChecker().get_compatibility(parse(reader), parse(writer))
    return result.compatibility is SchemaCompatibilityType.compatible


PAIRS = [(old, new) for _, old, new, _ in SINGLE_STEP] + [
    (old, new) for _, history, new, _ in HISTORIES for old in history
]


@pytest.mark.parametrize("old, new", PAIRS)
def test_every_pair_decided_as_apache_avro_decides_it(old: str, new: str) -> None:
    for reader, writer in ((new, old), (old, new)):
        ours = not incompatibilities(parse_avro(reader), parse_avro(writer))
        assert ours == _avro_oracle(reader, writer), (reader, writer)


def test_union_against_union_checks_only_branches_that_may_read_each_other() -> None:
    """Each writer branch is tried against the reader branches of its kind and name, not
    against all of them: two unions of n records cost n checks, not n x n."""
    branches = [{"type": "record", "name": f"R{i}", "fields": []} for i in range(300)]
    old = parse_avro(json.dumps(["null", *branches]))
    new = parse_avro(json.dumps(["null", "int", *reversed(branches)]))
    checker = _Checker(reader=new, writer=old)
    assert checker.check(new.tree, old.tree, "") == []
    assert len(checker.decided) == len(branches)
    dropped = parse_avro(json.dumps(["null", *branches[1:]]))
    [missing] = incompatibilities(reader=dropped, writer=old)
    assert (missing.error_type, missing.path) == ("MISSING_UNION_BRANCH", "/1")


def test_a_union_branch_reads_by_alias_and_by_promotion() -> None:
    old = parse_avro(json.dumps(["null", {"type": "record", "name": "a.Old", "fields": []}, "int"]))
    renamed = {"type": "record", "name": "New", "aliases": ["a.Old"], "fields": []}
    new = parse_avro(json.dumps(["null", "double", renamed]))
    assert incompatibilities(reader=new, writer=old) == []
    assert incompatibilities(reader=old, writer=new) != []
