"""Client quotas: AlterClientQuotas and DescribeClientQuotas, their filters and their
errors, and their authorization (ALTER_CONFIGS / DESCRIBE_CONFIGS on the cluster).

Kafka applies a quota change to the broker's metadata asynchronously; each change is
followed by DescribeClientQuotas until the broker shows it, as a client would wait.
Kafka answers entries in hash-map order, so entries are compared sorted. Every
scenario removes its quotas at the end.
"""

from __future__ import annotations

import time
from typing import Any

from conformance.scenarios import Ctx, scenario
from conformance.scenarios.acls import (
    ALICE,
    CLUSTER,
    CLUSTER_KEEP,
    CLUSTER_NAME,
    OPEN,
    grant,
    revoke,
)
from conformance.wire import Acl, err
from tests.support.rawclient import RawClient

DESCRIBE_CLIENT_QUOTAS, ALTER_CLIENT_QUOTAS = 48, 49
EXACT, DEFAULT, SPECIFIED = 0, 1, 2
DESCRIBE_CONFIGS, ALTER_CONFIGS = 10, 11
USER, CLIENT = "user", "client-id"

Entity = list[tuple[str, str | None]]


def _entity(pairs: Entity) -> list[dict[str, Any]]:
    return [{"entity_type": t, "entity_name": n} for t, n in pairs]


def _entity_key(entity: Any) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((e.entity_type, str(e.entity_name)) for e in entity))


def alter(
    client: RawClient,
    entries: list[tuple[Entity, list[tuple[str, float | None]]]],
    validate_only: bool = False,
    version: int = 1,
) -> list[Any]:
    """Each entity's (sorted entity, error name, message), sorted."""
    response = client.request(
        ALTER_CLIENT_QUOTAS,
        version,
        entries=[
            {
                "entity": _entity(entity),
                "ops": [
                    {"key": k, "value": 0.0 if v is None else v, "remove": v is None}
                    for k, v in ops
                ],
            }
            for entity, ops in entries
        ],
        validate_only=validate_only,
    )
    return sorted(
        (_entity_key(e.entity), err(e.error_code), e.error_message) for e in response.entries
    )


def describe(
    client: RawClient,
    components: list[tuple[str, int, str | None]],
    strict: bool = False,
    version: int = 1,
) -> Any:
    """The entries (sorted entity, sorted values), or (error name, message)."""
    response = client.request(
        DESCRIBE_CLIENT_QUOTAS,
        version,
        components=[
            {"entity_type": t, "match_type": m, "match": name} for t, m, name in components
        ],
        strict=strict,
    )
    if response.error_code:
        return (err(response.error_code), response.error_message, response.entries)
    return sorted(
        (_entity_key(e.entity), sorted((v.key, v.value) for v in e.values))
        for e in response.entries or ()
    )


def _count(client: RawClient) -> int:
    found = describe(client, [])
    return len(found) if isinstance(found, list) else -1


# A liveness bound: Kafka applies quota changes through its controller's metadata log
# and shows them only then (slowly under load, on 2 shared cores).
SETTLE_S = 60.0


def _settle(client: RawClient, expected: int, timeout: float = SETTLE_S) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _count(client) == expected:
            return True
        time.sleep(0.05)
    return False


def _until(client: RawClient, components: list[tuple[str, int, str | None]], want: Any) -> bool:
    deadline = time.monotonic() + SETTLE_S
    while time.monotonic() < deadline:
        if describe(client, components, strict=True) == want:
            return True
        time.sleep(0.05)
    return False


def clear(client: RawClient) -> None:
    """Remove every quota and wait until the broker shows none (the scenario's cleanup).
    Kafka shows a change only once its controller has applied it: an entry that becomes
    visible while this waits is removed too, so none is left for the next scenario."""
    deadline = time.monotonic() + SETTLE_S
    while time.monotonic() < deadline:
        found = describe(client, [])
        if found == []:
            return
        if isinstance(found, list):
            alter(
                client,
                [
                    (
                        [(t, None if n == "None" else n) for t, n in entity],
                        [(k, None) for k, _ in values],
                    )
                    for entity, values in found
                ],
            )
        time.sleep(0.05)


# The entities the round trip sets, one of each kind Kafka resolves.
_SET: list[tuple[Entity, list[tuple[str, float | None]]]] = [
    ([(USER, "alice")], [("producer_byte_rate", 1024.0), ("request_percentage", 25.5)]),
    ([(USER, "alice"), (CLIENT, "c1")], [("consumer_byte_rate", 2048.0)]),
    ([(USER, None)], [("producer_byte_rate", 4096.0)]),
    ([(USER, None), (CLIENT, None)], [("controller_mutation_rate", 3.0)]),
    ([(CLIENT, "c1")], [("producer_byte_rate", 512.0)]),
    ([(CLIENT, None)], [("consumer_byte_rate", 8192.0)]),
]


@scenario()
def round_trip(ctx: Ctx) -> None:
    """Set quotas on every kind of entity, describe them through each filter (exact,
    default, any; strict or not), replace and remove values; validate_only changes
    nothing."""
    client = ctx.raw()
    try:
        clear(client)
        ctx.record("validate_only", alter(client, _SET[:2], validate_only=True))
        ctx.record("set", alter(client, _SET))
        ctx.check(_settle(client, len(_SET)), "quotas visible")
        ctx.record("all", describe(client, []))
        ctx.record("all_strict", describe(client, [], strict=True))
        filters: dict[str, list[tuple[str, int, str | None]]] = {
            "user_alice": [(USER, EXACT, "alice")],
            "user_default": [(USER, DEFAULT, None)],
            "user_any": [(USER, SPECIFIED, None)],
            "client_c1": [(CLIENT, EXACT, "c1")],
            "client_default": [(CLIENT, DEFAULT, None)],
            "client_any": [(CLIENT, SPECIFIED, None)],
            "alice_any_client": [(USER, EXACT, "alice"), (CLIENT, SPECIFIED, None)],
            "default_both": [(USER, DEFAULT, None), (CLIENT, DEFAULT, None)],
            "user_nobody": [(USER, EXACT, "nobody")],
            "ip_any": [("ip", SPECIFIED, None)],
        }
        for name, components in filters.items():
            ctx.record(f"describe.{name}", describe(client, components))
            ctx.record(f"describe.{name}.strict", describe(client, components, strict=True))
        ctx.record(
            "replace",
            alter(
                client,
                [
                    (
                        [(USER, "alice")],
                        [("producer_byte_rate", 2000.0), ("request_percentage", None)],
                    ),
                    ([(CLIENT, "c1")], [("producer_byte_rate", None), ("never_set", None)]),
                ],
            ),
        )
        want = [((("user", "alice"),), [("producer_byte_rate", 2000.0)])]
        ctx.check(_until(client, [(USER, EXACT, "alice")], want), "replacement visible")
        ctx.check(_settle(client, len(_SET) - 1), "removal visible")
        ctx.record("after", describe(client, []))
        ctx.record("v0", describe(client, [(USER, EXACT, "alice")], strict=True, version=0))
    finally:
        clear(client)


@scenario()
def alter_errors(ctx: Ctx) -> None:
    """AlterClientQuotas refusals, entity by entity: bad entity types and combinations,
    empty names, unknown keys, values Kafka refuses; valid entries beside them apply."""
    client = ctx.raw()
    try:
        clear(client)
        cases: dict[str, tuple[Entity, list[tuple[str, float | None]]]] = {
            "empty_entity": ([], [("producer_byte_rate", 1.0)]),
            "unknown_type": ([("group", "g")], [("producer_byte_rate", 1.0)]),
            "empty_user": ([(USER, "")], [("producer_byte_rate", 1.0)]),
            "empty_client": ([(CLIENT, "")], [("producer_byte_rate", 1.0)]),
            "unknown_key": ([(CLIENT, "e1")], [("bogus_rate", 1.0)]),
            "scram_key": ([(USER, "e1")], [("SCRAM-SHA-256", 4096.0)]),
            "fractional": ([(CLIENT, "e1")], [("producer_byte_rate", 1.5)]),
            "zero": ([(CLIENT, "e1")], [("consumer_byte_rate", 0.0)]),
            "negative": ([(CLIENT, "e1")], [("request_percentage", -5.0)]),
            "huge": ([(CLIENT, "e1")], [("producer_byte_rate", 1e300)]),
            "duplicate_key": (
                [(CLIENT, "e1")],
                [("producer_byte_rate", 1.0), ("producer_byte_rate", 2.0)],
            ),
        }
        for name, entry in cases.items():
            ctx.record(f"error.{name}", alter(client, [entry]))
        ctx.record(
            "mixed",
            alter(
                client,
                [
                    ([(CLIENT, "ok1")], [("producer_byte_rate", 100.0)]),
                    ([(CLIENT, "bad1")], [("producer_byte_rate", 100.0), ("bogus", 1.0)]),
                ],
            ),
        )
        ctx.check(_settle(client, 1), "valid entry applied")
        ctx.record("after", describe(client, []))
    finally:
        clear(client)


@scenario()
def describe_errors(ctx: Ctx) -> None:
    """DescribeClientQuotas refusals: empty or unknown entity types, a type twice, match
    strings where the match type forbids or needs one, ip with user or client-id."""
    client = ctx.raw()
    cases: dict[str, list[tuple[str, int, str | None]]] = {
        "empty_type": [("", EXACT, "x")],
        "unknown_type": [("group", EXACT, "g")],
        "type_twice": [(USER, EXACT, "a"), (USER, DEFAULT, None)],
        "exact_without_name": [(USER, EXACT, None)],
        "default_with_name": [(USER, DEFAULT, "a")],
        "any_with_name": [(CLIENT, SPECIFIED, "a")],
        "unknown_match_type": [(USER, 9, None)],
        "ip_and_user": [("ip", SPECIFIED, None), (USER, SPECIFIED, None)],
    }
    for name, components in cases.items():
        ctx.record(f"error.{name}", describe(client, components))


@scenario()
def ip_entities(ctx: Ctx) -> None:
    """A quota on an ip entity (connection_creation_rate): Kafka stores it; contextplane
    does not enforce connection creation rates and refuses it as an unknown type."""
    client = ctx.raw()
    try:
        clear(client)
        result = ctx.record(
            "set", alter(client, [([("ip", "127.0.0.1")], [("connection_creation_rate", 5.0)])])
        )
        # Wait until a stored quota shows, so that the cleanup sees (and removes) it.
        accepted = sum(1 for _, code, _ in result if code == "none")
        ctx.check(_settle(client, accepted), "stored quota visible")
    finally:
        clear(client)


_QUOTA_ADMIN = [
    Acl(CLUSTER, CLUSTER_NAME, operation=ALTER_CONFIGS, principal=ALICE),
    Acl(CLUSTER, CLUSTER_NAME, operation=DESCRIBE_CONFIGS, principal=ALICE),
    *CLUSTER_KEEP,
]


@scenario(settings=OPEN)
def refused_without_cluster_configs_acl(ctx: Ctx) -> None:
    """With ALTER_CONFIGS and DESCRIBE_CONFIGS on the cluster given to someone else,
    AlterClientQuotas answers CLUSTER_AUTHORIZATION_FAILED for every entry and
    DescribeClientQuotas for the request."""
    client = ctx.raw()
    try:
        grant(
            ctx,
            client,
            "grant",
            _QUOTA_ADMIN,
            visible=lambda: isinstance(describe(client, []), tuple),
        )
        ctx.record(
            "alter",
            alter(
                client,
                [
                    ([(CLIENT, "x1")], [("producer_byte_rate", 100.0)]),
                    ([(USER, None)], [("consumer_byte_rate", 100.0)]),
                ],
            ),
        )
        ctx.record("describe", describe(client, []))
    finally:
        revoke(client)
        clear(client)
