"""Schema references through the REST API over the in-memory store: registering a schema
that uses another subject's types, reading its references back, `referencedby`, the
42206 refusal to delete what is referenced, compatibility through references, and the
bounds (unknown targets, depth) refused with 42201 and nothing stored."""

from __future__ import annotations

import json
from typing import Any

from contextplane.services.schema_registry.records import SchemaValue, encode, schema_key
from contextplane.services.schema_registry.references import REFERENCE_DEPTH_MAX, Reference
from contextplane.services.schema_registry.state import RegistryState
from contextplane.services.schema_registry.store import MemoryStore
from tests.unit.test_schema_registry_api import Client, error, run, schema

ADDRESS = {
    "type": "record",
    "name": "Address",
    "namespace": "com.acme",
    "fields": [{"name": "street", "type": "string"}],
}
ADDRESS_WITH_REQUIRED_ZIP = {
    **ADDRESS,
    "fields": [*ADDRESS["fields"], {"name": "zip", "type": "string"}],
}
USER = {
    "type": "record",
    "name": "User",
    "namespace": "com.acme",
    "fields": [{"name": "home", "type": "Address"}],
}


def ref(version: int, name: str = "com.acme.Address", subject: str = "address") -> dict[str, Any]:
    return {"name": name, "subject": subject, "version": version}


def test_a_schema_uses_another_subjects_type_and_reads_back_its_references() -> None:
    async def test(client: Client, store: MemoryStore) -> None:
        assert (await client("POST", "/subjects/address/versions", schema(ADDRESS))).json() == {
            "id": 1
        }
        # Without its reference the type is unknown: 42201, nothing stored.
        written = len(store.log)
        unknown = await client("POST", "/subjects/user/versions", schema(USER))
        assert error(unknown) == (422, 42201) and "com.acme.Address" in unknown.json()["message"]
        assert len(store.log) == written

        body = schema(USER, references=[ref(-1)])  # -1: the latest, stored as its number
        assert (await client("POST", "/subjects/user/versions", body)).json() == {"id": 2}
        latest = (await client("GET", "/subjects/user/versions/latest")).json()
        assert latest["references"] == [ref(1)]
        assert (await client("GET", "/schemas/ids/2")).json()["references"] == [ref(1)]
        assert "references" not in (await client("GET", "/schemas/ids/1")).json()
        # The same text and references again: the same id, nothing written.
        written = len(store.log)
        again = await client("POST", "/subjects/user/versions", schema(USER, references=[ref(1)]))
        assert again.json() == {"id": 2} and len(store.log) == written
        found = await client("POST", "/subjects/user", schema(USER, references=[ref(1)]))
        assert (found.json()["version"], found.json()["id"]) == (1, 2)

        referrers = await client("GET", "/subjects/address/versions/1/referencedby")
        assert referrers.json() == [2]
        assert (await client("GET", "/subjects/user/versions/1/referencedby")).json() == []

    run(test)


def test_equal_text_with_other_references_is_another_schema() -> None:
    async def test(client: Client, store: MemoryStore) -> None:
        await client("POST", "/subjects/address/versions", schema(ADDRESS))
        other = {**ADDRESS, "doc": "a new version"}
        await client("POST", "/subjects/address/versions", schema(other))
        first = await client("POST", "/subjects/u1/versions", schema(USER, references=[ref(1)]))
        second = await client("POST", "/subjects/u2/versions", schema(USER, references=[ref(2)]))
        assert (first.json(), second.json()) == ({"id": 3}, {"id": 4})

    run(test)


def test_a_referenced_version_cannot_be_deleted_while_referenced() -> None:
    async def test(client: Client, store: MemoryStore) -> None:
        await client("POST", "/subjects/address/versions", schema(ADDRESS))
        await client("POST", "/subjects/user/versions", schema(USER, references=[ref(1)]))
        written = len(store.log)
        refused = await client("DELETE", "/subjects/address/versions/1")
        assert error(refused) == (422, 42206)
        assert refused.json()["message"] == (
            "One or more references exist to the schema "
            "{magic=1,keytype=SCHEMA,subject=address,version=1}."
        )
        assert error(await client("DELETE", "/subjects/address")) == (422, 42206)
        assert len(store.log) == written

        # Once the referrer is soft-deleted, a soft delete goes through; a hard delete
        # still does not, as the soft-deleted referrer would be left dangling.
        assert (await client("DELETE", "/subjects/user/versions/1")).json() == 1
        assert (await client("GET", "/subjects/address/versions/1/referencedby")).json() == []
        deleted_too = "/subjects/address/versions/1/referencedby?deleted=true"
        assert (await client("GET", deleted_too)).json() == [2]
        assert (await client("DELETE", "/subjects/address/versions/1")).json() == 1
        hard = await client("DELETE", "/subjects/address/versions/1?permanent=true")
        assert error(hard) == (422, 42206)
        assert (await client("DELETE", "/subjects/user/versions/1?permanent=true")).json() == 1
        assert (await client("DELETE", "/subjects/address/versions/1?permanent=true")).json() == 1

    run(test)


def test_a_subject_may_delete_versions_only_it_refers_to() -> None:
    async def test(client: Client, store: MemoryStore) -> None:
        await client("POST", "/subjects/s/versions", schema(ADDRESS))
        inner = schema(USER, references=[ref(1, subject="s")])
        await client("PUT", "/config/s", {"compatibility": "NONE"})
        assert (await client("POST", "/subjects/s/versions", inner)).json() == {"id": 2}
        assert (await client("DELETE", "/subjects/s")).json() == [1, 2]

    run(test)


def test_compatibility_reads_through_references() -> None:
    async def test(client: Client, store: MemoryStore) -> None:
        await client("PUT", "/config/address", {"compatibility": "NONE"})
        await client("POST", "/subjects/address/versions", schema(ADDRESS))
        await client("POST", "/subjects/address/versions", schema(ADDRESS_WITH_REQUIRED_ZIP))
        await client("POST", "/subjects/user/versions", schema(USER, references=[ref(1)]))
        # The new User reads Address with a required zip the old one's data lacks.
        newer = schema(USER, references=[ref(2)])
        check = await client("POST", "/compatibility/subjects/user/versions/latest", newer)
        assert check.json() == {"is_compatible": False}
        written = len(store.log)
        assert error(await client("POST", "/subjects/user/versions", newer)) == (409, 409)
        assert len(store.log) == written

    run(test)


def test_bad_references_are_42201_and_store_nothing() -> None:
    async def test(client: Client, store: MemoryStore) -> None:
        await client("POST", "/subjects/address/versions", schema(ADDRESS))
        written = len(store.log)
        cases = [
            [ref(2)],  # no such version
            [ref(1, subject="nope")],  # no such subject
            [ref(0)],
            [{"name": "x", "subject": "address"}],
            [{"name": "", "subject": "address", "version": 1}],
            [{"name": "x", "subject": "address", "version": "1"}],
            "address",
            [ref(1)] * 101,
        ]
        for references in cases:
            answer = await client(
                "POST", "/subjects/user/versions", schema(USER, references=references)
            )
            assert error(answer) == (422, 42201), (references, answer.body)
        assert len(store.log) == written

    run(test)


def test_reference_depth_is_bounded() -> None:
    async def test(client: Client, store: MemoryStore) -> None:
        await client("POST", "/subjects/r0/versions", schema({**ADDRESS, "name": "T0"}))
        for depth in range(1, REFERENCE_DEPTH_MAX + 2):
            document = {
                "type": "record",
                "name": f"T{depth}",
                "namespace": "com.acme",
                "fields": [{"name": "inner", "type": f"T{depth - 1}"}],
            }
            inner = ref(1, name=f"com.acme.T{depth - 1}", subject=f"r{depth - 1}")
            answer = await client(
                "POST", f"/subjects/r{depth}/versions", schema(document, references=[inner])
            )
            if depth <= REFERENCE_DEPTH_MAX:
                assert answer.status == 200, answer.body
            else:
                assert error(answer) == (422, 42201)
                assert "deeper" in answer.json()["message"]

    run(test)


def test_the_fold_skips_references_to_nothing_and_so_any_cycle() -> None:
    state = RegistryState()
    # A version that names itself, and one naming a version that comes later: neither
    # target exists when the record is read.
    for subject, target in (("a", ("a", 1)), ("b", ("c", 1))):
        value = SchemaValue(
            subject, 1, 7, json.dumps(USER), False, references=(Reference("x", *target),)
        )
        state.apply(encode(schema_key(subject, 1)), encode(value.to_json()))
    assert state.skipped_records == 2 and not state.schemas
    address = SchemaValue("address", 1, 1, json.dumps(ADDRESS), False)
    state.apply(encode(schema_key("address", 1)), encode(address.to_json()))
    user = SchemaValue(
        "user", 1, 2, json.dumps(USER), False, references=(Reference("n", "address", 1),)
    )
    state.apply(encode(schema_key("user", 1)), encode(user.to_json()))
    assert state.referencing_ids("address", 1, deleted=False) == [2]
    state.apply(encode(schema_key("user", 1)), None)
    assert state.referencing_ids("address", 1, deleted=True) == []
    assert state.skipped_records == 2


def test_a_version_number_given_again_is_resolved_again() -> None:
    """After hard deletes, a version number can name another schema: a schema looked up
    or registered with a reference to it is parsed against the new one."""

    async def test(client: Client, store: MemoryStore) -> None:
        await client("POST", "/subjects/address/versions", schema(ADDRESS))
        await client("POST", "/subjects/user/versions", schema(USER, references=[ref(1)]))
        for subject in ("user", "address"):
            await client("DELETE", f"/subjects/{subject}")
            await client("DELETE", f"/subjects/{subject}?permanent=true")
        other = {**ADDRESS, "name": "Other"}
        assert (await client("POST", "/subjects/address/versions", schema(other))).status == 200
        assert (await client("GET", "/subjects/address/versions")).json() == [1]
        again = await client("POST", "/subjects/user/versions", schema(USER, references=[ref(1)]))
        assert error(again) == (422, 42201)

    run(test)
