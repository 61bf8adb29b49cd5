"""Schemas built to exhaust the registry: nesting past the parser's recursion, `$ref` chains
and definitions that refer to each other thousands deep, unions thousands wide, a .proto
with thousands of fields. Each is
answered (42201 or a compatibility verdict, never a 500 or a stalled loop), stores nothing
when refused, and the registry answers the next request."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from contextplane.services.schema_registry.json_compat import COMPARE_DEPTH_MAX
from contextplane.services.schema_registry.json_schema import REF_CHAIN_MAX
from contextplane.services.schema_registry.protobuf_schema import PROTO_BYTES_MAX
from contextplane.services.schema_registry.schema_text import SCHEMA_DEPTH_MAX
from contextplane.services.schema_registry.store import MemoryStore
from tests.unit.test_schema_registry_api import Client, error, run


def body(document: Any) -> dict[str, Any]:
    return {"schema": json.dumps(document), "schemaType": "JSON"}


def nested_properties(levels: int, leaf: str) -> dict[str, Any]:
    node: dict[str, Any] = {"type": leaf}
    for _ in range(levels):
        node = {"type": "object", "properties": {"a": node}}
    return node


def definitions_chain(length: int, leaf: str) -> dict[str, Any]:
    """d0 has a property that is d1, ... d{length} is the leaf: each step one $ref."""
    definitions = {
        f"d{i}": {"type": "object", "properties": {"next": {"$ref": f"#/definitions/d{i + 1}"}}}
        for i in range(length)
    }
    definitions[f"d{length}"] = {"type": leaf}
    return {"definitions": definitions, "$ref": "#/definitions/d0"}


async def still_answers(client: Client) -> None:
    answer = await client("POST", "/subjects/fine/versions", body({"type": "string"}))
    assert answer.status == 200, answer.body


def test_nesting_past_the_bound_is_refused_and_below_it_is_compared() -> None:
    async def test(client: Client, store: MemoryStore) -> None:
        written = len(store.log)
        opening = '{"type": "object", "properties": {"a": ' * 5000
        text = opening + '{"type": "string"}' + "}}" * 5000
        deep = await client(
            "POST", "/subjects/deep/versions", {"schema": text, "schemaType": "JSON"}
        )
        assert error(deep) == (422, 42201) and "nested deeper" in deep.json()["message"]
        assert len(store.log) == written
        # As deep as the text may nest: parsed, checked against the meta-schema, compared.
        levels = (SCHEMA_DEPTH_MAX - 1) // 2
        accepted = await client(
            "POST", "/subjects/deep/versions", body(nested_properties(levels, "string"))
        )
        assert accepted.status == 200, accepted.body
        changed = await client(
            "POST", "/subjects/deep/versions", body(nested_properties(levels, "integer"))
        )
        assert error(changed) == (409, 409)
        assert "TYPE_CHANGED" in changed.json()["message"]
        await still_answers(client)

    run(test)


def test_ref_chains_are_bounded() -> None:
    async def test(client: Client, store: MemoryStore) -> None:
        written = len(store.log)
        # $ref to $ref to ...: refused past REF_CHAIN_MAX, and a loop of them too.
        hops = {f"r{i}": {"$ref": f"#/definitions/r{i + 1}"} for i in range(10_000)}
        hops["r10000"] = {"type": "string"}
        chain = await client(
            "POST",
            "/subjects/chain/versions",
            body({"definitions": hops, "$ref": "#/definitions/r0"}),
        )
        assert error(chain) == (422, 42201)
        assert f"more than {REF_CHAIN_MAX} $refs" in chain.json()["message"]
        assert len(store.log) == written

        # Definitions that are properties of each other, 5,000 deep: stored (it is a valid
        # schema), and a change is compared only to COMPARE_DEPTH_MAX: answered as
        # incompatible, not with a RecursionError.
        first = await client(
            "POST", "/subjects/chain/versions", body(definitions_chain(5000, "string"))
        )
        assert first.status == 200, first.body
        again = await client(
            "POST", "/subjects/chain/versions", body(definitions_chain(5000, "string"))
        )
        assert again.json() == first.json()  # the same schema: no comparison at all
        changed = await client(
            "POST", "/subjects/chain/versions", body(definitions_chain(5000, "integer"))
        )
        assert error(changed) == (409, 409)
        assert "TOO_COMPLEX" in changed.json()["message"]
        shallow = definitions_chain(COMPARE_DEPTH_MAX // 4, "string")
        await client("POST", "/subjects/shallow/versions", body(shallow))
        check = await client(
            "POST",
            "/compatibility/subjects/shallow/versions/latest?verbose=true",
            body(definitions_chain(COMPARE_DEPTH_MAX // 4, "integer")),
        )
        assert check.json()["is_compatible"] is False
        assert "TYPE_CHANGED" in check.json()["messages"][0]
        await still_answers(client)

    run(test)


def test_unions_thousands_wide_are_compared_within_the_bound() -> None:
    branches = [
        {"type": "object", "properties": {f"p{i}": {"type": "string"}}, "required": [f"p{i}"]}
        for i in range(3000)
    ]

    async def test(client: Client, store: MemoryStore) -> None:
        first = await client("POST", "/subjects/wide/versions", body({"anyOf": branches}))
        assert first.status == 200, first.body
        # Reversed order, one branch fewer: every pair may be compared (9 million) before
        # the bound stops it; answered either way.
        narrower = await client("POST", "/subjects/wide/versions", body({"anyOf": branches[:0:-1]}))
        assert error(narrower) == (409, 409)
        await still_answers(client)

    run(test)


def big_proto(fields: int) -> str:
    numbers = (n for n in range(1, fields + 1_000) if not 19000 <= n <= 19999)
    lines = "".join(f"  int32 f{n} = {n};\n" for n, _ in zip(numbers, range(fields), strict=False))
    return 'syntax = "proto3";\npackage acme;\nmessage Big {\n' + lines + "}\n"


def test_a_proto_with_thousands_of_fields_stays_bounded() -> None:
    async def test(client: Client, store: MemoryStore) -> None:
        written = len(store.log)
        huge = await client(
            "POST",
            "/subjects/big/versions",
            {"schema": big_proto(20_000), "schemaType": "PROTOBUF"},
        )
        assert error(huge) == (422, 42201)
        assert f"larger than {PROTO_BYTES_MAX} bytes" in huge.json()["message"]
        assert len(store.log) == written
        fitting = big_proto(2_500)
        assert len(fitting) <= PROTO_BYTES_MAX
        first = await client(
            "POST", "/subjects/big/versions", {"schema": fitting, "schemaType": "PROTOBUF"}
        )
        assert first.status == 200, first.body
        changed = fitting.replace("int32 f7 ", "string f7 ")
        refused = await client(
            "POST", "/subjects/big/versions", {"schema": changed, "schemaType": "PROTOBUF"}
        )
        assert error(refused) == (409, 409)
        await still_answers(client)

    run(test)


def test_other_requests_are_answered_while_a_large_schema_is_parsed() -> None:
    """The parse runs on a worker thread: a request that comes after a slow registration
    is answered before it, rather than waiting for its seconds of parsing."""

    async def test(client: Client, store: MemoryStore) -> None:
        await still_answers(client)
        slow = asyncio.create_task(
            client(
                "POST",
                "/subjects/big/versions",
                {"schema": big_proto(2_500), "schemaType": "PROTOBUF"},
            )
        )
        for _ in range(100):  # the registration gets to its parse, handed to a thread
            await asyncio.sleep(0)
        listed = await client("GET", "/subjects")
        assert listed.json() == ["fine"]
        assert not slow.done()
        assert (await slow).status == 200

    run(test)
