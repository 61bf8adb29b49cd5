"""JSON Schema through the REST API over the in-memory store: the canonical string as the
identity of a schema, invalid schemas refused with 42201 naming the problem and nothing
stored, compatibility on register, and `$ref` to another subject's schema through
references."""

from __future__ import annotations

import json
from typing import Any

import pytest

from contextplane.services.schema_registry.errors import RegistryError
from contextplane.services.schema_registry.formats import parse
from contextplane.services.schema_registry.json_schema import nests_quantifiers
from contextplane.services.schema_registry.store import MemoryStore
from tests.unit.test_schema_registry_api import Client, error, run

ORDER = {
    "type": "object",
    "properties": {"id": {"type": "integer"}, "note": {"type": "string"}},
    "required": ["id"],
    "additionalProperties": False,
}


def body(document: Any, **extra: Any) -> dict[str, Any]:
    return {"schema": json.dumps(document), "schemaType": "JSON", **extra}


def test_the_canonical_string_drops_whitespace_and_keeps_key_order() -> None:
    spaced = parse("JSON", json.dumps(ORDER, indent=4))
    assert spaced.canonical == json.dumps(ORDER, separators=(",", ":"))
    assert parse("JSON", spaced.canonical).canonical == spaced.canonical
    reordered = parse("JSON", json.dumps(dict(reversed(list(ORDER.items())))))
    assert reordered.canonical != spaced.canonical  # as Confluent: another schema


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('{"type": "strin"}', "'strin' is not valid"),
        ('{"type": "object", "properties": {"a": {"minLength": -1}}}', "properties/a/minLength"),
        ('{"$ref": "#/definitions/missing"}', "does not resolve"),
        ('{"$ref": "other.json"}', "no schema reference is named 'other.json'"),
        (
            '{"definitions": {"a": {"$ref": "#/definitions/b"}, "b": {"$ref": "#/definitions/a"}},'
            ' "$ref": "#/definitions/a"}',
            "chain",
        ),
        ("[1, 2]", "an object or a boolean"),
        ('{"patternProperties": {"^(a+)+$": {}}}', "nests quantifiers"),
        ("{not json", "not JSON"),
        ('{"maximum": NaN}', "not JSON"),
    ],
)
def test_invalid_schemas_are_refused_naming_the_problem(text: str, problem: str) -> None:
    with pytest.raises(RegistryError) as caught:
        parse("JSON", text)
    assert caught.value.error_code == 42201
    assert problem in caught.value.message


def test_register_look_up_check_and_refuse() -> None:
    async def test(client: Client, store: MemoryStore) -> None:
        first = await client("POST", "/subjects/orders-value/versions", body(ORDER))
        assert first.json() == {"id": 1}
        again = await client(
            "POST",
            "/subjects/orders-value/versions",
            {**body(ORDER), "schema": json.dumps(ORDER, indent=2)},
        )
        assert again.json() == {"id": 1}
        latest = (await client("GET", "/subjects/orders-value/versions/latest")).json()
        assert latest["schemaType"] == "JSON"
        assert json.loads(latest["schema"]) == ORDER
        assert (await client("GET", "/schemas/ids/1")).json()["schemaType"] == "JSON"
        # The same text as Avro would be another schema; here it is not Avro at all.
        found = await client("POST", "/subjects/orders-value", body(ORDER))
        assert found.json()["id"] == 1

        # Closed model: an optional property may be added, a required one may not.
        optional = {**ORDER, "properties": {**ORDER["properties"], "tag": {"type": "string"}}}
        required = {**optional, "required": ["id", "tag"]}
        written = len(store.log)
        refused = await client("POST", "/subjects/orders-value/versions", body(required))
        assert error(refused) == (409, 409)
        assert "REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL" in refused.json()["message"]
        bad = await client("POST", "/subjects/orders-value/versions", body({"type": 5}))
        assert error(bad) == (422, 42201)
        assert len(store.log) == written
        assert (await client("POST", "/subjects/orders-value/versions", body(optional))).json() == {
            "id": 2
        }
        verdict = await client(
            "POST", "/compatibility/subjects/orders-value/versions/latest?verbose=true", body(ORDER)
        )
        # Back to the first version: tag is gone from a closed model, which data written
        # with version 2 may carry.
        assert verdict.json()["is_compatible"] is False
        assert "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL" in verdict.json()["messages"][0]

    run(test)


def test_a_ref_to_another_subjects_schema_through_a_reference() -> None:
    address = {"type": "object", "properties": {"street": {"type": "string"}}}
    customer = {"type": "object", "properties": {"home": {"$ref": "address.json"}}}
    reference = {"name": "address.json", "subject": "address", "version": 1}

    async def test(client: Client, store: MemoryStore) -> None:
        await client("POST", "/subjects/address/versions", body(address))
        unresolved = await client("POST", "/subjects/customer/versions", body(customer))
        assert error(unresolved) == (422, 42201)
        answer = await client(
            "POST", "/subjects/customer/versions", body(customer, references=[reference])
        )
        assert answer.json() == {"id": 2}
        assert (await client("GET", "/subjects/address/versions/1/referencedby")).json() == [2]
        # A JSON schema may not refer to an Avro one.
        await client("POST", "/subjects/avro/versions", {"schema": '"string"'})
        avro_ref = {"name": "x.json", "subject": "avro", "version": 1}
        mixed = await client("POST", "/subjects/c2/versions", body(customer, references=[avro_ref]))
        assert error(mixed) == (422, 42201)
        # Compatibility reads through the reference: a new address version that changes
        # street's type makes the customer referring to it incompatible.
        await client("PUT", "/config/address", {"compatibility": "NONE"})
        changed = {"type": "object", "properties": {"street": {"type": "integer"}}}
        await client("POST", "/subjects/address/versions", body(changed))
        newer = body(customer, references=[{**reference, "version": 2}])
        assert error(await client("POST", "/subjects/customer/versions", newer)) == (409, 409)

    run(test)


def test_pattern_properties_keys_that_may_backtrack_exponentially_are_refused() -> None:
    refused = ["(a+)+$", "(a*)*b", "(x{2,})*", "([a-z]+)*x", "((a+))+"]
    accepted = ["^S_", "^(ab)+$", r"\(a+\)+", "([+*])+", "[(]a+[)]+", "^[A-Z][a-z]*$"]
    assert [p for p in refused if not nests_quantifiers(p)] == []
    assert [p for p in accepted if nests_quantifiers(p)] == []
