"""Logins per client address (address_logins.py) and the audit of successful ones
(session_audit.py), through the registry's app as `contextplane registry` builds it
(ClusterAccess: each uncached password a SCRAM login to a real broker in this process):
a flood of wrong passwords for many user names from one address is answered 429 past
two logins in flight and costs the cluster two logins, while another address's first
login is made at once; one audit record per address and credentials, not per request."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka.admin import (
    AdminClient,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)

from contextplane.cli.protocol_admin import connect_with
from contextplane.clock import SystemClock
from contextplane.security.audit import AuditLog
from contextplane.services.schema_registry.address_logins import (
    PER_ADDRESS,
    AddressLogins,
    TooManyLogins,
)
from contextplane.services.schema_registry.app import build_app
from contextplane.services.schema_registry.cluster_access import SOURCE, ClusterAccess
from contextplane.services.schema_registry.cluster_acls import ClusterAcls
from contextplane.services.schema_registry.cluster_logins import ClusterLogins, login_config
from contextplane.services.schema_registry.registry import SchemaRegistry
from contextplane.services.schema_registry.session_audit import SessionAudit
from contextplane.services.schema_registry.store import MemoryStore
from tests.support.asgi import Answer, call
from tests.support.inprocess import InProcessBroker

SETTINGS = {
    "listeners": "PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0",
    "sasl.enabled.mechanisms": "SCRAM-SHA-512",
}
FLOOD = 50


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(the PLAINTEXT listener's address, the SASL listener's), alice a SCRAM user."""
    broker = InProcessBroker(tmp_path_factory.mktemp("cluster"), settings=SETTINGS).start()
    plaintext = f"127.0.0.1:{broker.listener_port('PLAINTEXT')}"
    info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096)
    upsert = UserScramCredentialUpsertion("alice", info, b"alice-secret")
    admin = AdminClient({"bootstrap.servers": plaintext})  # kept until it has answered
    for future in admin.alter_user_scram_credentials([upsert]).values():
        future.result(30)
    yield plaintext, f"127.0.0.1:{broker.listener_port('SASL_PLAINTEXT')}"
    broker.stop()


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_a_flood_from_one_address_does_not_hold_up_another_and_successes_are_audited_once(
    cluster: tuple[str, str],
) -> None:
    plaintext, sasl = cluster
    logins = ClusterLogins(login_config({"bootstrap.servers": sasl}, "SCRAM-SHA-512"), "_schemas")
    records: list[dict[str, Any]] = []

    def offer(key: bytes, value: bytes) -> bool:
        records.append(json.loads(value)["data"])
        return True

    audit = AuditLog(offer, SOURCE, SystemClock().wall_ms)
    acls = ClusterAcls(connect_with({"bootstrap.servers": plaintext}), frozenset(), False)
    access = ClusterAccess("BASIC", "SchemaRegistry", logins, None, acls, audit, None)

    async def scenario() -> None:
        try:
            await acls.start()
            await flood_then_sessions()
        finally:
            await access.close()

    async def flood_then_sessions() -> None:
        registry = SchemaRegistry(MemoryStore())
        await registry.start()
        app = build_app(registry, access)

        async def get(headers: dict[str, str], host: str, port: int = 40000) -> Answer:
            return await call(app, "GET", "/", headers=headers, client=(host, port))

        # Wrong passwords for many user names from one address, alice's first login from
        # another at the same time.
        flood = [get(_basic(f"user-{i}", "wrong"), "10.0.0.1", 50000 + i) for i in range(FLOOD)]
        *flooded, alice = await asyncio.gather(
            *flood, get(_basic("alice", "alice-secret"), "10.0.0.2")
        )
        assert alice.status == 200, alice.body
        statuses = [answer.status for answer in flooded]
        assert statuses.count(401) == PER_ADDRESS
        assert statuses.count(429) == FLOOD - PER_ADDRESS
        refused = next(answer for answer in flooded if answer.status == 429)
        assert refused.json() == {
            "error_code": 429,
            "message": "Too Many Requests: too many logins in flight from this client address",
        }
        assert refused.headers["retry-after"] == "1"
        # The cluster was asked for the flood's first two and alice's: her login queued
        # behind no more than two of the flood's.
        assert logins.logins == PER_ADDRESS + 1

        # One client's burst of the same credentials counts once: none refused (and the
        # cluster is asked once: one login per user at a time, then its cached answer).
        made = logins.logins
        burst = await asyncio.gather(
            *(get(_basic("alice", "guess"), "10.0.0.3", 41000 + i) for i in range(10))
        )
        assert [answer.status for answer in burst] == [401] * 10
        assert logins.logins == made + 1

        # Alice again from her address: no new record; from another: one.
        for _ in range(3):
            assert (await get(_basic("alice", "alice-secret"), "10.0.0.2")).status == 200
        assert (await get(_basic("alice", "alice-secret"), "10.0.0.4", 42000)).status == 200

    asyncio.run(scenario())
    successes = [
        record
        for record in records
        if record.get("operation") == "AUTHENTICATE" and record["decision"] == "ALLOWED"
    ]
    assert [(r["principal"], r["client_address"]) for r in successes] == [
        ("User:alice", "10.0.0.2:40000"),
        ("User:alice", "10.0.0.4:42000"),
    ]
    assert {(r["mechanism"], r["listener"], r["result"]) for r in successes} == {
        ("HTTP BASIC", "schema-registry", "SUCCESS")
    }
    failed = [r for r in records if r.get("reason") == "too many logins in flight"]
    assert failed and failed[0]["decision"] == "DENIED"


def test_checks_in_flight_are_bounded_per_address_and_forgotten() -> None:
    async def scenario() -> None:
        limits = AddressLogins(per_address=2)
        release = asyncio.Event()
        calls: list[str] = []

        async def check(credentials: str) -> str:
            calls.append(credentials)
            await release.wait()
            return credentials.upper()

        def checking(host: str, credentials: str) -> asyncio.Task[str]:
            return asyncio.create_task(limits.check(host, credentials, lambda: check(credentials)))

        first, same, other = checking("h", "x"), checking("h", "x"), checking("h", "y")
        await asyncio.sleep(0)
        assert calls == ["x", "x", "y"]  # the same credentials again count once
        with pytest.raises(TooManyLogins):
            await limits.check("h", "z", lambda: check("z"))
        assert limits.refused == 1
        elsewhere = checking("h2", "z")
        await asyncio.sleep(0)
        assert calls == ["x", "x", "y", "z"]  # another address is not refused
        # A check abandoned (its client gone) frees its place.
        first.cancel()
        release.set()
        assert (await same, await other, await elsewhere) == ("X", "Y", "Z")
        assert limits.addresses() == 0  # nothing in flight: nothing kept

    asyncio.run(scenario())


def test_nothing_is_audited_twice_within_a_session() -> None:
    sessions = SessionAudit(sessions_max=2)
    assert sessions.is_new("a", "Basic x")
    assert not sessions.is_new("a", "Basic x")
    assert sessions.is_new("b", "Basic x")  # another address, another session
    assert sessions.is_new("a", "Basic y")
    # At most two remembered: the least recently started ("a", "Basic x") was forgotten.
    assert sessions.is_new("a", "Basic x")
    assert not sessions.is_new("a", "Basic y")
