"""Describe/AlterUserScramCredentials' rules, as Kafka's ScramImage and
ScramControlManager apply them, against a real SQLite metadata store."""

from __future__ import annotations

import asyncio
import hashlib

from contextplane.metadata.store import open_metadata_store
from contextplane.protocol.error_codes import ErrorCode
from contextplane.security import scram
from contextplane.security.scram_credentials import Deletion, Outcome, ScramCredentials, Upsertion

SHA256, SHA512 = scram.SHA_256.type, scram.SHA_512.type


def _upsert(user: str, mechanism: int = SHA512, iterations: int = 4096) -> Upsertion:
    size = 64 if mechanism == SHA512 else 32
    return Upsertion(user, mechanism, iterations, b"salt" * 8, b"\x01" * size)


def _run(metadata_url: str, body) -> None:  # type: ignore[no-untyped-def]
    async def run() -> None:
        store = open_metadata_store(metadata_url)
        await store.open()
        try:
            await body(store)
        finally:
            await store.close()

    asyncio.run(run())


def test_alter_then_describe_and_reload(metadata_url: str) -> None:
    async def body(store) -> None:  # type: ignore[no-untyped-def]
        credentials = await ScramCredentials.load(store)
        outcomes = await credentials.alter([], [_upsert("alice"), _upsert("bob", SHA256, 8192)])
        assert outcomes == [Outcome("alice"), Outcome("bob")]
        described = credentials.describe(None)
        assert [(d.user, d.credentials) for d in described] == [
            ("alice", ((SHA512, 4096),)),
            ("bob", ((SHA256, 8192),)),
        ]
        reloaded = await ScramCredentials.load(store)
        record = reloaded.lookup("alice", "SCRAM-SHA-512")
        assert record is not None
        client_key = scram._hmac(scram.SHA_512, b"\x01" * 64, b"Client Key")
        assert record.stored_key == hashlib.sha512(client_key).digest()
        assert (await reloaded.alter([Deletion("bob", SHA256)], [])) == [Outcome("bob")]
        assert (await ScramCredentials.load(store)).lookup("bob", "SCRAM-SHA-256") is None

    _run(metadata_url, body)


def test_kafkas_errors(metadata_url: str) -> None:
    async def body(store) -> None:  # type: ignore[no-untyped-def]
        credentials = await ScramCredentials.load(store)
        outcomes = await credentials.alter(
            [Deletion("ghost", SHA512), Deletion("", SHA512)],
            [
                _upsert("twice"),
                _upsert("twice", SHA256),
                _upsert("weak", iterations=4095),
                _upsert("strong", iterations=16385),
                _upsert("unknown", mechanism=3),
                Upsertion("short", SHA512, 4096, b"salt", b"\x01" * 10),
                _upsert("fine"),
            ],
        )
        assert outcomes[0] == Outcome("fine")
        errors = {o.user: (o.error, o.message) for o in outcomes[1:]}
        assert errors == {
            "ghost": (
                ErrorCode.resource_not_found,
                "Attempt to delete a user credential that does not exist",
            ),
            "": (ErrorCode.unacceptable_credential, "Username must not be empty"),
            "twice": (
                ErrorCode.duplicate_resource,
                "A user credential cannot be altered twice in the same request",
            ),
            "weak": (ErrorCode.unacceptable_credential, "Too few iterations"),
            "strong": (ErrorCode.unacceptable_credential, "Too many iterations"),
            "unknown": (ErrorCode.unsupported_sasl_mechanism, "Unknown SCRAM mechanism"),
            "short": (
                ErrorCode.unacceptable_credential,
                "The salted password is not a SCRAM-SHA-512 digest",
            ),
        }
        assert credentials.lookup("twice", "SCRAM-SHA-512") is None
        described = {d.user: d for d in credentials.describe(["fine", "nobody", "fine", "x"])}
        assert described["fine"].error == ErrorCode.duplicate_resource
        assert described["nobody"].error == ErrorCode.resource_not_found
        assert described["nobody"].message == (
            "Attempt to describe a user credential that does not exist: nobody"
        )

    _run(metadata_url, body)


def test_reload_reads_what_another_broker_changed(metadata_url: str) -> None:
    """A second ScramCredentials on the same store (another broker) sees a user created,
    its credential replaced and deleted only once it reloads, and then whole."""

    async def body(store) -> None:  # type: ignore[no-untyped-def]
        mine = await ScramCredentials.load(store)
        other = await ScramCredentials.load(store)
        await mine.alter([], [_upsert("alice"), _upsert("bob")])
        assert other.lookup("alice", scram.SHA_512.name) is None
        await other.reload()
        assert other.lookup("alice", scram.SHA_512.name) == mine.lookup("alice", scram.SHA_512.name)
        assert len(other) == 2
        await mine.alter([Deletion("bob", SHA512)], [_upsert("alice", iterations=8192)])
        await other.reload()
        changed = other.lookup("alice", scram.SHA_512.name)
        assert changed is not None and changed.iterations == 8192
        assert other.lookup("bob", scram.SHA_512.name) is None and len(other) == 1

    _run(metadata_url, body)
