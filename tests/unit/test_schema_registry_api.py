"""The registry's REST API through its ASGI app over the in-memory store: Confluent's
answers, error codes and content type, and nothing stored when a request is refused."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from contextplane.services.schema_registry.app import build_app
from contextplane.services.schema_registry.http_io import BODY_BYTES_MAX, CONTENT_TYPE
from contextplane.services.schema_registry.records import encode, schema_key
from contextplane.services.schema_registry.registry import SchemaRegistry
from contextplane.services.schema_registry.store import MemoryStore
from tests.support.asgi import Answer, call

V1 = {"type": "record", "name": "User", "fields": [{"name": "a", "type": "int"}]}
V2 = {**V1, "fields": [*V1["fields"], {"name": "b", "type": "string", "default": ""}]}
REQUIRED_B = {**V1, "fields": [*V1["fields"], {"name": "b", "type": "string"}]}

Client = Callable[..., Awaitable[Answer]]


def run(
    test: Callable[[Client, MemoryStore], Awaitable[None]], store: MemoryStore | None = None
) -> MemoryStore:
    store = store or MemoryStore()

    async def main() -> None:
        registry = SchemaRegistry(store)
        await registry.start()
        app = build_app(registry)

        async def client(
            method: str, target: str, body: Any = None, raw: bytes | None = None
        ) -> Answer:
            return await call(app, method, target, body, raw)

        await test(client, store)

    asyncio.run(main())
    return store


def schema(document: Any, **extra: Any) -> dict[str, Any]:
    return {"schema": json.dumps(document), **extra}


def error(answer: Answer) -> tuple[int, int]:
    return answer.status, answer.json()["error_code"]


def test_register_look_up_and_read_back() -> None:
    async def test(client: Client, store: MemoryStore) -> None:
        answer = await client("POST", "/subjects/users-value/versions", schema(V1))
        assert (answer.status, answer.json()) == (200, {"id": 1})
        assert answer.headers["content-type"] == CONTENT_TYPE
        # Equal text (other whitespace) is the same schema: same id, nothing written.
        written = len(store.log)
        again = await client(
            "POST", "/subjects/users-value/versions", {"schema": json.dumps(V1, indent=2)}
        )
        assert again.json() == {"id": 1}
        assert len(store.log) == written
        # The same schema under another subject keeps its id.
        other = await client("POST", "/subjects/other-value/versions", schema(V1))
        assert other.json() == {"id": 1}
        assert (await client("POST", "/subjects/users-value/versions", schema(V2))).json() == {
            "id": 2
        }

        assert (await client("GET", "/subjects")).json() == ["other-value", "users-value"]
        assert (await client("GET", "/subjects/users-value/versions")).json() == [1, 2]
        latest = (await client("GET", "/subjects/users-value/versions/latest")).json()
        assert latest["subject"] == "users-value"
        assert (latest["version"], latest["id"]) == (2, 2)
        assert json.loads(latest["schema"]) == V2
        assert (await client("GET", "/subjects/users-value/versions/-1")).json() == latest
        by_id = (await client("GET", "/schemas/ids/1")).json()
        assert json.loads(by_id["schema"]) == V1 and "schemaType" not in by_id
        raw = await client("GET", "/schemas/ids/1/schema")
        assert json.loads(raw.body) == V1
        pairs = (await client("GET", "/schemas/ids/1/versions")).json()
        assert pairs == [
            {"subject": "other-value", "version": 1},
            {"subject": "users-value", "version": 1},
        ]
        assert (await client("GET", "/schemas/ids/1/subjects")).json() == [
            "other-value",
            "users-value",
        ]
        found = (await client("POST", "/subjects/users-value", schema(V1))).json()
        assert (found["version"], found["id"]) == (1, 1)
        assert (await client("GET", "/schemas/types")).json() == ["AVRO", "JSON", "PROTOBUF"]
        every = (await client("GET", "/schemas")).json()
        assert [(f["subject"], f["version"], f["id"]) for f in every] == [
            ("other-value", 1, 1),
            ("users-value", 1, 1),
            ("users-value", 2, 2),
        ]
        latest = (await client("GET", "/schemas?latestOnly=true")).json()
        assert [(f["subject"], f["version"], f["id"]) for f in latest] == [
            ("other-value", 1, 1),
            ("users-value", 2, 2),
        ]
        assert (await client("GET", "/contexts")).json() == ["."]
        referrers = await client("GET", "/subjects/users-value/versions/1/referencedby")
        assert referrers.json() == []
        missing = await client("GET", "/subjects/users-value/versions/9/referencedby")
        assert error(missing) == (404, 40402)
        assert (await client("GET", "/subjects?subjectPrefix=us")).json() == ["users-value"]
        assert (await client("GET", "/subjects/users-value/versions?offset=1&limit=1")).json() == [
            2
        ]

    run(test)


def test_not_found_and_invalid_requests_answer_confluents_codes_and_store_nothing() -> None:
    async def test(client: Client, store: MemoryStore) -> None:
        await client("POST", "/subjects/s/versions", schema(V1))
        written = len(store.log)
        cases = [
            (("GET", "/subjects/nope/versions"), (404, 40401)),
            (("GET", "/subjects/s/versions/7"), (404, 40402)),
            (("GET", "/schemas/ids/99"), (404, 40403)),
            (("GET", "/subjects/s/versions/abc"), (422, 42202)),
            (("GET", "/subjects/s/versions/0"), (422, 42202)),
            (("POST", "/subjects/s", schema(REQUIRED_B)), (404, 40403)),
            (("POST", "/subjects/nope", schema(V1)), (404, 40401)),
            (("POST", "/subjects/s/versions", schema(REQUIRED_B)), (409, 409)),
            (("POST", "/subjects/s/versions", {"schema": "{not json"}), (422, 42201)),
            (("POST", "/subjects/s/versions", {"schema": ""}), (422, 42201)),
            (("POST", "/subjects/s/versions", {"schema": 7}), (422, 422)),
            (("POST", "/subjects/s/versions", schema(V1, schemaType="PROTOBUF")), (422, 42201)),
            (("PUT", "/config", {"compatibility": "SIDEWAYS"}), (422, 42203)),
            (("PUT", "/mode", {"mode": "WRITEONLY"}), (422, 42204)),
            (("GET", "/config/s"), (404, 40408)),
            (("GET", "/mode/s"), (404, 40409)),
            (("GET", "/no/such/route"), (404, 404)),
            (("DELETE", "/schemas/types"), (405, 405)),
        ]
        for (method, target, *body), expected in cases:
            answer = await client(method, target, *body)
            assert error(answer) == expected, (method, target, answer.body)
            assert answer.headers["content-type"] == CONTENT_TYPE
        for raw in (b"{not json", b"[1, 2]", b'"text"'):
            answer = await client("POST", "/subjects/s/versions", raw=raw)
            assert error(answer) == (400, 400), raw
        huge = json.dumps({"schema": "x" * BODY_BYTES_MAX}).encode()
        assert error(await client("POST", "/subjects/s/versions", raw=huge)) == (413, 41301)
        incompatible = await client("POST", "/subjects/s/versions", schema(REQUIRED_B))
        assert "READER_FIELD_MISSING_DEFAULT_VALUE" in incompatible.json()["message"]
        assert len(store.log) == written

    run(test)


def test_soft_then_hard_deletes() -> None:
    async def test(client: Client, store: MemoryStore) -> None:
        await client("POST", "/subjects/s/versions", schema(V1))
        await client("POST", "/subjects/s/versions", schema(V2))
        assert error(await client("DELETE", "/subjects/s/versions/1?permanent=true")) == (
            404,
            40407,
        )
        assert (await client("DELETE", "/subjects/s/versions/1")).json() == 1
        assert error(await client("DELETE", "/subjects/s/versions/1")) == (404, 40406)
        assert (await client("GET", "/subjects/s/versions")).json() == [2]
        assert (await client("GET", "/subjects/s/versions?deleted=true")).json() == [1, 2]
        assert (await client("GET", "/subjects/s/versions?deleted_only=true")).json() == [1]
        assert error(await client("GET", "/subjects/s/versions/1")) == (404, 40402)
        assert (await client("GET", "/subjects/s/versions/1?deleted=true")).json()["id"] == 1
        # Soft-deleted versions are not checked and still count for numbering.
        await client("PUT", "/config/s", {"compatibility": "NONE"})
        assert (await client("POST", "/subjects/s/versions", schema(REQUIRED_B))).json() == {
            "id": 3
        }
        assert (await client("GET", "/subjects/s/versions")).json() == [2, 3]
        assert (await client("DELETE", "/subjects/s/versions/1?permanent=true")).json() == 1
        assert error(await client("GET", "/schemas/ids/1")) == (404, 40403)

        assert error(await client("DELETE", "/subjects/s?permanent=true")) == (404, 40405)
        assert (await client("DELETE", "/subjects/s")).json() == [2, 3]
        assert error(await client("DELETE", "/subjects/s")) == (404, 40404)
        assert (await client("GET", "/subjects")).json() == []
        assert (await client("GET", "/subjects?deleted=true")).json() == ["s"]
        assert (await client("GET", "/subjects?deletedOnly=true")).json() == ["s"]
        assert (await client("DELETE", "/subjects/s?permanent=true")).json() == [2, 3]
        assert (await client("GET", "/subjects?deleted=true")).json() == []
        assert error(await client("DELETE", "/subjects/s")) == (404, 40401)

    run(test)


def test_config_mode_and_compatibility_routes() -> None:
    async def test(client: Client, store: MemoryStore) -> None:
        assert (await client("GET", "/config")).json() == {"compatibilityLevel": "BACKWARD"}
        await client("POST", "/subjects/s/versions", schema(V1))
        check = await client(
            "POST", "/compatibility/subjects/s/versions/latest?verbose=true", schema(REQUIRED_B)
        )
        assert check.json()["is_compatible"] is False
        assert any("READER_FIELD_MISSING_DEFAULT_VALUE" in m for m in check.json()["messages"])
        ok = await client("POST", "/compatibility/subjects/s/versions/1", schema(V2))
        assert ok.json() == {"is_compatible": True}
        assert (await client("POST", "/compatibility/subjects/s/versions", schema(V2))).json() == {
            "is_compatible": True
        }
        assert error(await client("POST", "/compatibility/subjects/t/versions/1", schema(V2))) == (
            404,
            40401,
        )
        assert error(await client("POST", "/compatibility/subjects/s/versions/9", schema(V2))) == (
            404,
            40402,
        )

        assert (await client("PUT", "/config/s", {"compatibility": "forward"})).json() == {
            "compatibility": "FORWARD"
        }
        assert (await client("GET", "/config/s")).json() == {"compatibilityLevel": "FORWARD"}
        assert (await client("GET", "/config/t?defaultToGlobal=true")).json() == {
            "compatibilityLevel": "BACKWARD"
        }
        # FORWARD: the latest version reads the new one, so a required field may be added.
        assert (await client("POST", "/subjects/s/versions", schema(REQUIRED_B))).json() == {
            "id": 2
        }
        assert (await client("DELETE", "/config/s")).json() == {"compatibilityLevel": "FORWARD"}
        assert error(await client("GET", "/config/s")) == (404, 40408)
        assert (await client("PUT", "/config", {"compatibility": "NONE"})).json() == {
            "compatibility": "NONE"
        }

        assert (await client("GET", "/mode")).json() == {"mode": "READWRITE"}
        assert (await client("PUT", "/mode/s", {"mode": "READONLY"})).json() == {"mode": "READONLY"}
        written = len(store.log)
        assert error(await client("POST", "/subjects/s/versions", schema(V2))) == (422, 42205)
        assert error(await client("DELETE", "/subjects/s")) == (422, 42205)
        assert len(store.log) == written
        assert (await client("POST", "/subjects/t/versions", schema(V2))).json() == {"id": 3}
        assert (await client("DELETE", "/mode/s")).json() == {"mode": "READONLY"}
        assert (await client("GET", "/mode/s?defaultToGlobal=true")).json() == {"mode": "READWRITE"}

    run(test)


def test_a_registry_started_on_the_same_records_answers_the_same() -> None:
    async def write(client: Client, store: MemoryStore) -> None:
        await client("POST", "/subjects/s/versions", schema(V1))
        await client("POST", "/subjects/s/versions", schema(V2))
        await client("POST", "/subjects/t/versions", schema(V2))
        await client("DELETE", "/subjects/s/versions/1")
        await client("PUT", "/config/t", {"compatibility": "FULL"})
        await client("PUT", "/mode", {"mode": "READONLY"})

    async def read(client: Client, store: MemoryStore) -> None:
        assert (await client("GET", "/subjects/s/versions?deleted=true")).json() == [1, 2]
        assert (await client("GET", "/subjects/s/versions")).json() == [2]
        assert (await client("GET", "/subjects/t/versions/1")).json()["id"] == 2
        assert (await client("GET", "/config/t")).json() == {"compatibilityLevel": "FULL"}
        assert (await client("GET", "/mode")).json() == {"mode": "READONLY"}

    store = run(write)
    replayed = MemoryStore()
    replayed.log = list(store.log)
    run(read, replayed)


def test_the_listening_socket_names_tcp_so_connections_get_nodelay() -> None:
    """asyncio sets TCP_NODELAY only on sockets created with IPPROTO_TCP; without it each
    keep-alive answer waited ~40 ms for the client's delayed ACK."""
    import socket

    from contextplane.services.bound_socket import bind

    sock = bind("127.0.0.1", 0)
    try:
        assert sock.proto == socket.IPPROTO_TCP
    finally:
        sock.close()


def test_subjects_with_control_characters_are_refused_and_nothing_is_stored() -> None:
    """Confluent refuses a subject with any of Java's ISO control characters (42208);
    `..`, `%` and very long names are subjects like any other."""

    async def test(client: Client, store: MemoryStore) -> None:
        # (Tab and newline are not tried here: urlsplit drops them from the target.)
        for bad in ("a\x00b", "esc\x1b", "bell\x07", "del\x7f", "c1\x85"):
            for method, target, body in [
                ("POST", f"/subjects/{bad}/versions", schema(V1)),
                ("PUT", f"/config/{bad}", {"compatibility": "NONE"}),
                ("PUT", f"/mode/{bad}", {"mode": "READONLY"}),
            ]:
                answer = await client(method, target, body)
                assert error(answer) == (422, 42208), (method, repr(bad))
        assert store.log == []
        for odd in ("..", "%2F", "x" * 10_000, "ünïcode"):  # %2F: the subject "/"
            answer = await client("POST", f"/subjects/{odd}/versions", schema(V1))
            assert answer.json() == {"id": 1}
            assert (await client("GET", f"/subjects/{odd}/versions")).json() == [1]

    run(test)


def test_version_strings_are_read_as_confluent_reads_them() -> None:
    async def test(client: Client, store: MemoryStore) -> None:
        await client("POST", "/subjects/s/versions", schema(V1))
        for spec in ("1", "+1", "latest", "-1", "01"):
            answer = await client("GET", f"/subjects/s/versions/{spec}")
            assert (answer.status, answer.json()["version"]) == (200, 1), spec
        bad = ["0", "-2", "2147483648", "1_0", " 1", "1 ", "1.0", "0x1", "LATEST", "9" * 5000]
        for spec in bad:
            answer = await client("GET", f"/subjects/s/versions/{spec}")
            assert error(answer) == (422, 42202), spec[:20]
        assert error(await client("GET", "/subjects/s/versions/2147483647")) == (404, 40402)

    run(test)


def test_no_id_past_2_31_minus_1_is_handed_out() -> None:
    """Another writer's record may take the last id a client can decode: registering a
    new schema then fails, stores nothing, and known schemas still resolve."""
    store = MemoryStore()
    last = {"subject": "t", "version": 1, "id": 2**31 - 1, "schema": '"long"', "deleted": False}
    store.log.append((encode(schema_key("t", 1)), encode(last)))

    async def test(client: Client, store: MemoryStore) -> None:
        answer = await client("POST", "/subjects/s/versions", schema(V1))
        assert error(answer) == (500, 50001)
        assert len(store.log) == 1
        answer = await client("POST", "/subjects/s/versions", {"schema": '"long"'})
        assert answer.json() == {"id": 2**31 - 1}  # a known schema keeps its id

    run(test, store)
