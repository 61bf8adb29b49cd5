"""What the ACL scenarios share (acls.py, acl_bounds.py, acl_hosts.py, acl_sasl.py,
acl_consumer_groups.py, acl_share_groups.py): the broker settings, Kafka's ACL codes, and
creating, listing and deleting ACLs.

Kafka applies an ACL change to the broker's authorizer asynchronously; each change is
followed by DescribeAcls until the broker shows it, as a client would wait.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from conformance import wire
from conformance.scenarios import Ctx
from conformance.wire import Acl, acl_filter, err
from tests.support.rawclient import RawClient

STANDARD_AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
OPEN = {"authorizer.class.name": STANDARD_AUTHORIZER, "allow.everyone.if.no.acl.found": "true"}
SUPER = {
    "authorizer.class.name": STANDARD_AUTHORIZER,
    "super.users": "User:admin;User:ANONYMOUS",
}

TOPIC, GROUP, CLUSTER, TXN = 2, 3, 4, 5
ANY, MATCH, LITERAL, PREFIXED = 1, 2, 3, 4
ALL, READ, WRITE, CREATE, DELETE, ALTER, DESCRIBE = 2, 3, 4, 5, 6, 7, 8
CLUSTER_ACTION, DESCRIBE_CONFIGS, ALTER_CONFIGS, IDEMPOTENT_WRITE = 9, 10, 11, 12
DENY, ALLOW = 2, 3
ALICE = "User:alice"
CLUSTER_NAME = "kafka-cluster"
# What ANONYMOUS keeps on the cluster whenever a scenario adds cluster ACLs.
CLUSTER_KEEP = [
    Acl(CLUSTER, CLUSTER_NAME, operation=CLUSTER_ACTION),
    Acl(CLUSTER, CLUSTER_NAME, operation=ALTER),
]


def binding_text(resource: Any, acl: Any) -> str:
    return (
        f"{int(resource.resource_type)}:{int(resource.pattern_type)}:{resource.resource_name}"
        f" {acl.principal}@{acl.host} op={int(acl.operation)} perm={int(acl.permission_type)}"
    )


def described(client: RawClient, **filter_fields: Any) -> list[str] | str:
    """DescribeAcls' bindings as sorted strings (Kafka's order is a hash map's), or the
    error name."""
    response = wire.describe_acls(client, **filter_fields)
    if response.error_code:
        return err(response.error_code)
    return sorted(binding_text(r, a) for r in response.resources for a in r.acls)


def count_acls(client: RawClient) -> int:
    found = described(client)
    return len(found) if isinstance(found, list) else -1


def settle(client: RawClient, expected: int, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if count_acls(client) == expected:
            return True
        time.sleep(0.05)
    return False


def acl_text(acl: Acl) -> str:
    return (
        f"{acl.resource_type}:{acl.pattern_type}:{acl.name}"
        f" {acl.principal}@{acl.host} op={acl.operation} perm={acl.permission}"
    )


def grant(
    ctx: Ctx,
    client: RawClient,
    step: str,
    acls: list[Acl],
    visible: Callable[[], bool] | None = None,
) -> None:
    """Create ACLs and wait until the broker enforces them (DescribeAcls shows them all,
    or `visible` holds when DescribeAcls itself is what they refuse)."""
    before = described(client)
    response = wire.create_acls(client, acls)
    ctx.record(step, [err(r.error_code) for r in response.results])
    created = {
        acl_text(a) for a, r in zip(acls, response.results, strict=True) if r.error_code == 0
    }
    expected = len(set(before) | created) if isinstance(before, list) else -1
    ready = visible or (lambda: count_acls(client) == expected)
    deadline = time.monotonic() + 15.0
    while not ready():
        ctx.check(time.monotonic() < deadline, f"{step}: ACLs in force")
        time.sleep(0.05)


def revoke(client: RawClient) -> None:
    """Delete every ACL and wait until the broker shows none (the scenario's cleanup)."""
    wire.delete_acls(client, [acl_filter()])
    settle(client, 0)


def deleted_bindings(response: Any) -> list[Any]:
    return [
        (err(r.error_code), sorted(binding_text(m, m) for m in r.matching_acls))
        for r in response.filter_results
    ]


@dataclass(frozen=True)
class HeartbeatAcls:
    """What a group heartbeat's authorization scenario names: a topic open to every
    client, one closed to it, one closed and never created, a group and a closed group."""

    opened: str
    closed: str
    ghost: str
    group: str
    closed_group: str

    def acls(self) -> list[Acl]:
        """The ACLs naming only alice, which close `closed`, `ghost` and `closed_group`."""
        return [
            Acl(TOPIC, self.closed, operation=DESCRIBE, principal=ALICE),
            Acl(TOPIC, self.ghost, operation=DESCRIBE, principal=ALICE),
            Acl(GROUP, self.closed_group, operation=READ, principal=ALICE),
        ]


def heartbeat_acls(ctx: Ctx, client: RawClient, prefix: str) -> HeartbeatAcls:
    """The names of `prefix`, with the two real topics created (2 partitions each) and
    the group's coordinator found; the ACLs are granted by the caller, in its `try`."""
    names = HeartbeatAcls(
        f"{prefix}-open", f"{prefix}-closed", f"{prefix}-ghost", f"{prefix}-g",
        f"{prefix}-closed-g",
    )  # fmt: skip
    for name in (names.opened, names.closed):
        wire.create_topic(client, name, 2)
        ctx.check(wire.wait_for_topic(client, name, 2), f"topic {name} ready")
    wire.find_coordinator(client, names.group)
    return names
