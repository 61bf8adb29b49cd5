"""SCRAM credentials: DescribeUserScramCredentials and AlterUserScramCredentials (v0) on a
PLAINTEXT listener with no authorizer (both are open to everyone then), as
`kafka-configs --entity-type users` and confluent-kafka's admin client use them.

Kafka applies a credential change through its controller; each change is followed by
DescribeUserScramCredentials until the broker shows it. Kafka lists users in a hash
map's order: results are recorded sorted by user. Every scenario deletes its
credentials at the end.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from conformance.scenarios import Ctx, scenario
from conformance.wire import err
from tests.support.rawclient import RawClient

DESCRIBE, ALTER = 50, 51
SHA_256, SHA_512 = 1, 2


def _upsert(name: str, mechanism: int, iterations: int = 4096, **sizes: int) -> dict[str, Any]:
    digest = 32 if mechanism == SHA_256 else 64
    return {
        "name": name,
        "mechanism": mechanism,
        "iterations": iterations,
        "salt": b"s" * sizes.get("salt", 32),
        "salted_password": hashlib.sha512(name.encode()).digest()[: sizes.get("salted", digest)],
    }


def _results(response: Any) -> list[tuple[str, str, str | None]]:
    return sorted((r.user, err(r.error_code), r.error_message) for r in response.results)


def _described(client: RawClient, users: list[str] | None) -> Any:
    body = None if users is None else [{"name": u} for u in users]
    response = client.request(DESCRIBE, 0, users=body)
    return (
        err(response.error_code),
        response.error_message,
        sorted(
            (
                r.user,
                err(r.error_code),
                r.error_message,
                sorted((int(c.mechanism), int(c.iterations)) for c in r.credential_infos),
            )
            for r in response.results
        ),
    )


def _until(client: RawClient, users: list[str] | None, expected: Any, timeout: float = 15.0) -> Any:
    """DescribeUserScramCredentials, repeated until it answers `expected` (Kafka applies
    changes asynchronously) or the time is up; the last answer."""
    deadline = time.monotonic() + timeout
    while True:
        found = _described(client, users)
        if found == expected or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


@scenario()
def alter_and_describe(ctx: Ctx) -> None:
    """Upserts for both mechanisms, then Kafka's errors: empty user, unknown mechanism,
    too few and too many iterations, deleting what does not exist, a user named twice;
    DescribeUserScramCredentials of named users (one unknown, one twice) and of all."""
    client = ctx.raw()
    ctx.record("describe all, none yet", _described(client, None))
    response = client.request(
        ALTER,
        0,
        deletions=[],
        upsertions=[_upsert("cp-alice", SHA_512), _upsert("cp-alice-256", SHA_256, 8192)],
    )
    ctx.record("upsert two", _results(response))
    # Kafka's generated messages default a string to "": a success's message is "".
    alice = ("cp-alice", "none", "", [(SHA_512, 4096)])
    alice_256 = ("cp-alice-256", "none", "", [(SHA_256, 8192)])
    ctx.record("described", _until(client, None, ("none", "", [alice, alice_256])))
    response = client.request(
        ALTER,
        0,
        deletions=[
            {"name": "cp-ghost", "mechanism": SHA_512},
            {"name": "", "mechanism": SHA_512},
            {"name": "cp-bad-mechanism", "mechanism": 9},
        ],
        upsertions=[
            _upsert("cp-twice", SHA_512),
            _upsert("cp-twice", SHA_256),
            _upsert("cp-few", SHA_512, 4095),
            _upsert("cp-many", SHA_512, 16385),
            _upsert("cp-unknown", 0),
        ],
    )
    ctx.record("errors", _results(response))
    ctx.record(
        "describe named",
        _described(client, ["cp-alice", "cp-nobody", "cp-alice-256", "cp-alice-256"]),
    )
    response = client.request(
        ALTER,
        0,
        deletions=[
            {"name": "cp-alice", "mechanism": SHA_512},
            {"name": "cp-alice-256", "mechanism": SHA_256},
        ],
        upsertions=[],
    )
    ctx.record("delete both", _results(response))
    ctx.record("gone", _until(client, None, ("none", "", [])))
