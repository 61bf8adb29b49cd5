"""Regex subscriptions (KIP-848) and ACLs with real principals, on the SASL_PLAINTEXT
broker of acl_sasl.py (PLAIN users admin, alice and bob): Kafka 4.4 keeps one resolved
result per regex per group, resolved with the principal of the member whose heartbeat
triggered the resolution, and resolves again at most every
`group.consumer.regex.refresh.interval.ms` when no topic was created (so an ACL change
alone takes effect at the next refresh)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from conformance import wire
from conformance.scenarios import Ctx, scenario
from conformance.scenarios._acl_common import GROUP, PREFIXED, READ, TOPIC, grant, revoke
from conformance.scenarios.acl_sasl import ALICE, BOB, SASL, _clients, _topics
from conformance.scenarios.consumer_groups import CONSUMER_GROUP_DESCRIBE, _heartbeat
from conformance.wire import Acl, err
from tests.support.rawclient import RawClient

# Kafka's least refresh interval; its first refresh comes at the first heartbeat after.
REFRESH = {**SASL, "group.consumer.regex.refresh.interval.ms": "10000"}
# Liveness bound: Kafka resolves asynchronously, at most every 10 s per group.
SETTLE_S = 45.0


class _Member:
    """One member heartbeating as one user; `topics` names what it was last assigned."""

    def __init__(self, client: RawClient, admin: RawClient, group: str, member_id: str) -> None:
        self.client, self.admin, self.group, self.member_id = client, admin, group, member_id
        self.epoch = 0
        self.topics: list[str] = []

    def join(self, regex: str) -> str | None:
        """Join (retried while the coordinator loads): the error, or None. On a fresh
        Kafka only FindCoordinator creates the offsets topic."""
        wire.find_coordinator(self.admin, self.group)
        return self._answer(
            wire.retry_coordinator(
                lambda: _heartbeat(
                    self.client, self.group, self.member_id, 0, regex=regex, assignor="range"
                ),
                timeout=SETTLE_S,
            )
        )

    def beat(self) -> str | None:
        return self._answer(_heartbeat(self.client, self.group, self.member_id, self.epoch))

    def _answer(self, response: Any) -> str | None:
        if response.error_code:
            return err(response.error_code)
        self.epoch = response.member_epoch
        if response.assignment is not None:
            ids = {t.topic_id for t in response.assignment.topic_partitions}
            names = {t.topic_id: t.name for t in wire.metadata(self.admin, None).topics}
            self.topics = sorted(names.get(i, "?") for i in ids)
        return None

    def leave(self) -> None:
        _heartbeat(self.client, self.group, self.member_id, -1)


def _until(step: Callable[[], Any], done: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + SETTLE_S
    while time.monotonic() < deadline:
        step()
        if done():
            return True
        time.sleep(0.25)
    return False


@scenario(quick=False, settings=REFRESH)
def refresh_after_acl_change(ctx: Ctx) -> None:
    """alice's regex first matches the one topic she may describe; once she is granted
    the other, no topic being created, the group's next refresh assigns it to her."""
    users = _clients(ctx)
    admin = users["admin"]
    _topics(ctx, admin, ["rxr-open", "rxr-late"])
    try:
        grant(
            ctx,
            admin,
            "acls",
            [
                Acl(GROUP, "rxr-", PREFIXED, operation=READ, principal=ALICE),
                Acl(TOPIC, "rxr-open", operation=READ, principal=ALICE),
            ],
        )
        alice = _Member(users["alice"], admin, "rxr-g", "m-alice")
        ctx.record("join", alice.join("rxr-.*"))
        ctx.check(_until(alice.beat, lambda: bool(alice.topics)), "alice assigned")
        ctx.record("before", alice.topics)
        grant(ctx, admin, "grant_late", [Acl(TOPIC, "rxr-late", operation=READ, principal=ALICE)])
        _until(alice.beat, lambda: "rxr-late" in alice.topics)
        ctx.record("after_refresh", alice.topics)
        alice.leave()
    finally:
        revoke(admin)
        wire.delete_topics(admin, ["rxr-open", "rxr-late"])


def _target_topics(admin: RawClient, group: str, member_id: str) -> list[str]:
    described = admin.request(
        CONSUMER_GROUP_DESCRIBE, 1, group_ids=[group], include_authorized_operations=False
    )
    for member in described.groups[0].members:
        if member.member_id == member_id:
            return sorted(t.topic_name for t in member.target_assignment.topic_partitions)
    return []


@scenario(quick=False, settings=SASL)
def shared_by_two_principals(ctx: Ctx) -> None:
    """alice (who may describe both topics) and then bob (who may describe one) subscribe
    with the same regex: bob takes the group's result, resolved with alice's principal,
    and the range assignor gives him a partition of each topic."""
    users = _clients(ctx)
    admin = users["admin"]
    _topics(ctx, admin, ["rxs-both", "rxs-alice"], partitions=2)
    try:
        grant(
            ctx,
            admin,
            "acls",
            [
                Acl(GROUP, "rxs-", PREFIXED, operation=READ, principal=ALICE),
                Acl(GROUP, "rxs-", PREFIXED, operation=READ, principal=BOB),
                Acl(TOPIC, "rxs-both", operation=READ, principal=ALICE),
                Acl(TOPIC, "rxs-both", operation=READ, principal=BOB),
                Acl(TOPIC, "rxs-alice", operation=READ, principal=ALICE),
            ],
        )
        alice = _Member(users["alice"], admin, "rxs-g", "m-alice")
        bob = _Member(users["bob"], admin, "rxs-g", "m-bob")
        ctx.record("alice_join", alice.join("rxs-.*"))
        ctx.check(_until(alice.beat, lambda: len(alice.topics) == 2), "alice assigned both")
        ctx.record("alice", alice.topics)
        ctx.record("bob_join", bob.join("rxs-.*"))

        def both() -> None:
            alice.beat()
            bob.beat()

        _until(both, lambda: bool(_target_topics(admin, "rxs-g", "m-bob")))
        ctx.record("bob_target", _target_topics(admin, "rxs-g", "m-bob"))
        bob.leave()
        alice.leave()
    finally:
        revoke(admin)
        wire.delete_topics(admin, ["rxs-both", "rxs-alice"])
