"""Random pairs of Avro schemas, decided by our rules and by Apache Avro's own checker
(its Python port of Java's SchemaCompatibility, which Confluent's registry runs): the
answers must agree in both directions. The schemas are drawn from small pools of names,
symbols and types so that pairs overlap often enough to be interesting."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from contextplane.services.schema_registry.avro_compat import incompatibilities
from contextplane.services.schema_registry.avro_schema import parse_avro
from contextplane.services.schema_registry.errors import RegistryError

PRIMITIVE_DEFAULTS: dict[str, Any] = {
    "null": None,
    "boolean": False,
    "int": 0,
    "long": 0,
    "float": 0.0,
    "double": 0.0,
    "bytes": "",
    "string": "",
}
primitives = st.sampled_from(sorted(PRIMITIVE_DEFAULTS))
enums = st.builds(
    lambda name, symbols, default: {
        "type": "enum",
        "name": name,
        "symbols": symbols,
        **({"default": symbols[0]} if default else {}),
    },
    st.sampled_from(["E1", "E2"]),
    st.lists(st.sampled_from(["A", "B", "C"]), min_size=1, max_size=3, unique=True),
    st.booleans(),
)
fixeds = st.builds(
    lambda name, size: {"type": "fixed", "name": name, "size": size},
    st.sampled_from(["F1", "F2"]),
    st.sampled_from([4, 8]),
)
unions = st.lists(primitives, min_size=1, max_size=3, unique=True)


def _with_containers(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.builds(lambda items: {"type": "array", "items": items}, inner),
        st.builds(lambda values: {"type": "map", "values": values}, inner),
    )


field_types = st.recursive(
    st.one_of(primitives, enums, fixeds, unions), _with_containers, max_leaves=3
)


@st.composite
def fields(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(field_types)
    field: dict[str, Any] = {"name": draw(st.sampled_from(["a", "b", "c"])), "type": kind}
    if draw(st.booleans()):
        field["aliases"] = [draw(st.sampled_from(["a", "b", "c"]))]
    if draw(st.booleans()):
        if isinstance(kind, str):
            field["default"] = PRIMITIVE_DEFAULTS[kind]
        elif isinstance(kind, list):
            field["default"] = PRIMITIVE_DEFAULTS[kind[0]]
        elif kind["type"] == "enum":
            field["default"] = kind["symbols"][0]
        elif kind["type"] in ("array", "map"):
            field["default"] = [] if kind["type"] == "array" else {}
    return field


records = st.builds(
    lambda name, aliases, fields: {
        "type": "record",
        "name": name,
        **({"aliases": aliases} if aliases else {}),
        "fields": fields,
    },
    st.sampled_from(["R1", "R2"]),
    st.lists(st.sampled_from(["R1", "R2"]), max_size=1),
    st.lists(fields(), max_size=3, unique_by=lambda f: f["name"]),
)
schemas = st.one_of(records, field_types)


def _parsed_by_both(document: Any) -> str:
    text = json.dumps(document)
    from avro.schema import parse

    try:
        parse_avro(text)
        parse(text)
    except RegistryError:
        assume(False)
    except Exception:  # Apache Avro's parser refuses it (its own exception types)
        assume(False)
    return text


def _oracle(reader: str, writer: str) -> bool:
    from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType
    from avro.schema import parse

    result = ReaderWriterCompatibilityChecker().get_compatibility(parse(reader), parse(writer))
    return result.compatibility is SchemaCompatibilityType.compatible


@settings(max_examples=400, deadline=None)
@given(schemas, schemas)
def test_compatibility_agrees_with_apache_avro(first: Any, second: Any) -> None:
    one, other = _parsed_by_both(first), _parsed_by_both(second)
    for reader, writer in ((one, other), (other, one), (one, one)):
        ours = not incompatibilities(parse_avro(reader), parse_avro(writer))
        assert ours == _oracle(reader, writer), (reader, writer)
