"""The ACL matrix with real principals: both brokers serve one SASL_PLAINTEXT listener
(PLAIN users admin, alice and bob), with the StandardAuthorizer,
`allow.everyone.if.no.acl.found=false` and `super.users=User:admin`.

Each scenario lays out resources (topics, groups, the cluster) with one case each:
ALLOW, DENY beside an ALLOW (deny wins), no ACL, PREFIXED ALLOW, and operations granted
only by implication (DESCRIBE by READ/WRITE, DESCRIBE_CONFIGS by ALTER_CONFIGS); then
admin (the super user), alice and bob each call the main APIs on every resource, and
what each one is answered is recorded. Changes go through admin, and each ACL change is
followed by DescribeAcls until the broker shows it (Kafka applies them asynchronously).
Every scenario deletes its ACLs and topics at the end.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from conformance import wire
from conformance.brokers import CLIENT_LISTENER, SASL_ADMIN
from conformance.scenarios import Ctx, scenario
from conformance.scenarios._acl_common import (
    ALL,
    ALTER,
    ALTER_CONFIGS,
    CLUSTER,
    CLUSTER_NAME,
    CREATE,
    DELETE,
    DENY,
    DESCRIBE,
    DESCRIBE_CONFIGS,
    GROUP,
    IDEMPOTENT_WRITE,
    PREFIXED,
    READ,
    STANDARD_AUTHORIZER,
    TOPIC,
    WRITE,
    described,
    grant,
    revoke,
)
from conformance.wire import Acl, err
from tests.support.rawclient import RawClient
from tests.support.sasl_login import login

USERS = ("admin", "alice", "bob")
JAAS = (
    "org.apache.kafka.common.security.plain.PlainLoginModule required"
    ' username="admin" password="admin-secret"'
    + "".join(f' user_{u}="{u}-secret"' for u in USERS)
    + ";"
)
SASL = {
    CLIENT_LISTENER: "SASL_PLAINTEXT",
    SASL_ADMIN: "PLAIN:admin:admin-secret",
    "sasl.enabled.mechanisms": "PLAIN",
    "listener.name.sasl_plaintext.plain.sasl.jaas.config": JAAS,
    "authorizer.class.name": STANDARD_AUTHORIZER,
    "super.users": "User:admin",
    "allow.everyone.if.no.acl.found": "false",
}
ALICE, BOB = "User:alice", "User:bob"


def _clients(ctx: Ctx) -> dict[str, RawClient]:
    """One connection per user, each logged in with PLAIN."""
    return {u: login(ctx.raw(f"cf-{u}"), "PLAIN", u, f"{u}-secret") for u in USERS}


def _topics(ctx: Ctx, admin: RawClient, names: list[str], partitions: int = 1) -> None:
    for name in names:
        wire.create_topic(admin, name, partitions)
    for name in names:
        ctx.check(wire.wait_for_topic(admin, name, partitions), f"topic {name} ready")


def _produce(client: RawClient, topic: str) -> str:
    # Stamped now: with the batch's default 2023 stamp, retention.ms (7 days) lets either
    # broker delete it at its next retention check, and a later fetch at offset 0 then
    # depends on when that check ran (OFFSET_OUT_OF_RANGE on one side only).
    batch = wire.encode_batch([b"v"], timestamp=int(time.time() * 1000))
    return err(wire.produce(client, topic, batch).error_code)


def _safely(call: Any) -> Any:
    """A step's answer, or the exception's type when the broker closed the connection."""
    try:
        return call()
    except (OSError, ConnectionError) as exc:
        return type(exc).__name__


# -- topics ------------------------------------------------------------------------------

TOPIC_CASES = {
    "am-allow": [Acl(TOPIC, "am-allow", operation=ALL, principal=ALICE)],
    "am-deny": [
        Acl(TOPIC, "am-deny", operation=ALL, principal=ALICE),
        Acl(TOPIC, "am-deny", operation=WRITE, principal=ALICE, permission=DENY),
        Acl(TOPIC, "am-deny", operation=ALTER, principal=ALICE, permission=DENY),
        Acl(TOPIC, "am-deny", operation=READ, principal=BOB),
        Acl(TOPIC, "am-deny", operation=DESCRIBE, principal=BOB, permission=DENY),
    ],
    "am-none": [],
    "am-pre-x": [
        Acl(TOPIC, "am-pre-", PREFIXED, operation=WRITE, principal=ALICE),
        Acl(TOPIC, "am-pre-", PREFIXED, operation=READ, principal=BOB),
    ],
    "am-star": [
        Acl(TOPIC, "am-star", operation=READ, principal="User:*"),
        Acl(TOPIC, "am-star", operation=ALL, principal=BOB, permission=DENY),
    ],
    "am-impl": [
        Acl(TOPIC, "am-impl", operation=READ, principal=ALICE),
        Acl(TOPIC, "am-impl", operation=ALTER_CONFIGS, principal=ALICE),
        Acl(TOPIC, "am-impl", operation=WRITE, principal=BOB),
    ],
}


def _topic_calls(client: RawClient, name: str) -> dict[str, Any]:
    configs = wire.describe_configs(client, wire.TOPIC_RESOURCE, name, ["retention.ms"])
    altered = wire.alter_configs(client, name, {"retention.ms": "86400000"}, validate_only=True)
    incremental = wire.incremental_alter_configs(
        client, name, [("retention.ms", 0, "86400000")], validate_only=True
    )
    return {
        "produce": _produce(client, name),
        "fetch": err(wire.fetch_one(client, name, 0).error_code),
        "list_offsets": err(wire.list_offsets(client, name, -1).error_code),
        "metadata": [(t.name, err(t.error_code)) for t in wire.metadata(client, [name]).topics],
        "describe_configs": (err(configs.error_code), [c.value for c in configs.configs]),
        "alter_configs": err(altered.error_code),
        "incremental_alter_configs": err(incremental.error_code),
        "create_partitions": err(wire.create_partitions(client, name, 2, True).error_code),
        "delete_records": err(wire.delete_records(client, name, 0).error_code),
    }


@scenario(settings=SASL)
def topic_matrix(ctx: Ctx) -> None:
    """Produce, Fetch, ListOffsets, Metadata (named and all), DescribeConfigs,
    AlterConfigs, IncrementalAlterConfigs, CreatePartitions and DeleteRecords (the
    changes validate_only) by admin, alice and bob on topics with an ALLOW ALL, DENY
    beside ALLOW, no ACL, PREFIXED ALLOW, a `User:*` ALLOW with a DENY for bob, and
    implied-only ACLs."""
    clients = _clients(ctx)
    admin = clients["admin"]
    names = list(TOPIC_CASES)
    _topics(ctx, admin, names)
    try:
        grant(ctx, admin, "acls", [a for acls in TOPIC_CASES.values() for a in acls])
        for user, client in clients.items():
            for name in names:
                ctx.record(f"{user}.{name}", _topic_calls(client, name))
            listed = {t.name for t in wire.metadata(client, None).topics}
            ctx.record(f"{user}.metadata_all", sorted(n for n in names if n in listed))
    finally:
        revoke(admin)
        wire.delete_topics(admin, names)


# -- groups ------------------------------------------------------------------------------

GROUP_TOPIC = "am-gt"
GROUP_CASES = {
    "am-g-allow": [Acl(GROUP, "am-g-allow", operation=READ, principal=ALICE)],
    "am-g-deny": [
        Acl(GROUP, "am-g-deny", operation=ALL, principal=ALICE),
        Acl(GROUP, "am-g-deny", operation=DELETE, principal=ALICE, permission=DENY),
        Acl(GROUP, "am-g-deny", operation=READ, principal=BOB),
        Acl(GROUP, "am-g-deny", operation=READ, principal=BOB, permission=DENY),
    ],
    "am-g-none": [],
    "am-g-pre-1": [
        Acl(GROUP, "am-g-pre-", PREFIXED, operation=READ, principal=ALICE),
        Acl(GROUP, "am-g-pre-", PREFIXED, operation=DELETE, principal=ALICE),
        Acl(GROUP, "am-g-pre-", PREFIXED, operation=DESCRIBE, principal=BOB),
    ],
}
GROUP_TOPIC_ACLS = [
    Acl(TOPIC, GROUP_TOPIC, operation=READ, principal=ALICE),
    Acl(TOPIC, GROUP_TOPIC, operation=READ, principal=BOB),
]


def _group_calls(client: RawClient, group: str) -> dict[str, Any]:
    committed = wire.offset_commit(client, group, {(GROUP_TOPIC, 0): 1})
    fetched = wire.offset_fetch(client, group, {GROUP_TOPIC: [0]})
    groups = client.request(
        wire.DESCRIBE_GROUPS, 5, groups=[group], include_authorized_operations=True
    ).groups
    return {
        "find_coordinator": err(wire.find_coordinator(client, group).error_code),
        "offset_commit": err(committed.topics[0].partitions[0].error_code),
        "offset_fetch": (
            err(fetched.error_code),
            [
                (err(p.error_code), int(p.committed_offset))
                for t in fetched.topics
                for p in t.partitions
            ],
        ),
        "describe": [
            (err(g.error_code), g.group_state, int(g.authorized_operations)) for g in groups
        ],
    }


@scenario(settings=SASL)
def group_matrix(ctx: Ctx) -> None:
    """FindCoordinator, OffsetCommit, OffsetFetch, DescribeGroups (with authorized
    operations), JoinGroup (refused cases), ListGroups and DeleteGroups by admin, alice
    and bob on groups with READ, ALL beside DENY, no ACL and PREFIXED ACLs."""
    clients = _clients(ctx)
    admin = clients["admin"]
    groups = list(GROUP_CASES)
    _topics(ctx, admin, [GROUP_TOPIC])
    for group in groups:
        ctx.record(
            f"admin.first_commit.{group}",
            err(wire.commit_when_ready(admin, group, {(GROUP_TOPIC, 0): 0})),
        )
    try:
        acls = [a for acls in GROUP_CASES.values() for a in acls] + GROUP_TOPIC_ACLS
        grant(ctx, admin, "acls", acls)
        for user, client in clients.items():
            for group in groups:
                ctx.record(f"{user}.{group}", _group_calls(client, group))
            listed = {g.group_id for g in wire.list_groups(client).groups}
            ctx.record(f"{user}.list_groups", sorted(g for g in groups if g in listed))
        for group in groups:  # bob may join none of them
            ctx.record(f"bob.join.{group}", err(wire.join_group(clients["bob"], group).error_code))
        ctx.record(
            "alice.join.am-g-none", err(wire.join_group(clients["alice"], "am-g-none").error_code)
        )
        for user in ("bob", "alice", "admin"):
            results = wire.delete_groups(clients[user], groups).results
            ctx.record(
                f"{user}.delete_groups", sorted((r.group_id, err(r.error_code)) for r in results)
            )
    finally:
        revoke(admin)
        wire.delete_groups(admin, groups)
        wire.delete_topics(admin, [GROUP_TOPIC])


# -- the cluster -------------------------------------------------------------------------

CLUSTER_ACLS = [
    Acl(CLUSTER, CLUSTER_NAME, operation=CREATE, principal=ALICE),
    Acl(CLUSTER, CLUSTER_NAME, operation=ALTER, principal=ALICE),
    Acl(CLUSTER, CLUSTER_NAME, operation=IDEMPOTENT_WRITE, principal=ALICE),
    Acl(CLUSTER, CLUSTER_NAME, operation=ALTER_CONFIGS, principal=ALICE),
    Acl(CLUSTER, CLUSTER_NAME, operation=DESCRIBE, principal=BOB),
    # ALTER implies DESCRIBE, but a DENY wins: DescribeAcls is refused to alice.
    Acl(CLUSTER, CLUSTER_NAME, operation=DESCRIBE, principal=ALICE, permission=DENY),
    Acl(TOPIC, "am-bob-", PREFIXED, operation=CREATE, principal=BOB),
    Acl(TOPIC, "am-bob-", PREFIXED, operation=WRITE, principal=BOB),
    Acl(TOPIC, "am-del-a", operation=DELETE, principal=ALICE),
    Acl(TOPIC, "am-del-b", operation=DESCRIBE, principal=BOB),
    Acl(TOPIC, "am-del-b", operation=DELETE, principal=BOB, permission=DENY),
    Acl(TOPIC, "am-del-b", operation=ALL, principal=BOB),
]


def _cluster_calls(client: RawClient, user: str) -> dict[str, Any]:
    created = wire.create_topics(
        client, [{"name": f"am-c-{user}"}, {"name": f"am-bob-c-{user}"}], validate_only=True
    )
    auto = wire.metadata(client, [f"am-auto-{user}", f"am-bob-auto-{user}"], auto_create=True)
    acl = Acl(TOPIC, f"am-acl-{user}", operation=READ, principal="User:carol")
    created_acls = wire.create_acls(client, [acl]).results
    broker = wire.describe_configs(client, wire.BROKER_RESOURCE, "1", ["log.cleaner.threads"])
    altered = wire.incremental_alter_configs(
        client,
        "1",
        [("log.cleaner.threads", 0, "1")],
        validate_only=True,
        resource_type=wire.BROKER_RESOURCE,
    )
    return {
        "create_topics": [(t.name, err(t.error_code)) for t in created.topics],
        "metadata_auto_create": {t.name: err(t.error_code) for t in auto.topics},
        "describe_acls": err(wire.describe_acls(client).error_code),
        "create_acls": [err(r.error_code) for r in created_acls],
        "init_producer_id": err(wire.init_producer_id(client).error_code),
        "broker_describe_configs": err(broker.error_code),
        # Only the authorization decision: broker configs are static in contextplane
        # (an alteration the cluster ACLs allow is INVALID_REQUEST there).
        "broker_incremental_alter_configs_refused": err(altered.error_code)
        == "cluster_authorization_failed",
    }


@scenario(settings=SASL)
def cluster_matrix(ctx: Ctx) -> None:
    """CreateTopics (validate_only), Metadata auto-creation, DescribeAcls, CreateAcls,
    InitProducerId (idempotent), broker DescribeConfigs / IncrementalAlterConfigs and
    DeleteTopics by admin, alice (cluster CREATE, ALTER, IDEMPOTENT_WRITE, ALTER_CONFIGS)
    (but DESCRIBE denied) and bob (cluster DESCRIBE; PREFIXED CREATE and WRITE on
    topics)."""
    clients = _clients(ctx)
    admin = clients["admin"]
    doomed = ["am-del-a", "am-del-b"]
    created = [f"am-{p}auto-{u}" for u in USERS for p in ("", "bob-")]
    _topics(ctx, admin, doomed)
    try:
        grant(ctx, admin, "acls", CLUSTER_ACLS)
        answers = {user: ctx.record(user, _cluster_calls(clients[user], user)) for user in USERS}
        # What auto-creation left behind: the topics not refused exist once Kafka's
        # controller has created them; the refused ones never do.
        for user in USERS:
            for name, code in answers[user]["metadata_auto_create"].items():
                if code != "topic_authorization_failed":
                    wire.wait_for_topic(admin, name, 1)
        existing = {t.name for t in wire.metadata(admin, None).topics}
        ctx.record("auto_created", sorted(n for n in created if n in existing))
        for user in ("bob", "alice", "admin"):
            deleted = wire.delete_topics(clients[user], [*doomed, "am-del-missing"])
            # Kafka's controller answers in a hash map's order.
            ctx.record(
                f"{user}.delete_topics",
                sorted((r.name, err(r.error_code)) for r in deleted.responses),
            )
        ctx.record("acls_after", described(admin, principal="User:carol"))
    finally:
        revoke(admin)
        wire.delete_topics(admin, doomed + created)


# -- authorized operations ---------------------------------------------------------------


@scenario(settings=SASL)
def authorized_operations(ctx: Ctx) -> None:
    """The authorized-operations bit sets: Metadata's per topic and for the cluster
    (include_topic/cluster_authorized_operations, v10), DescribeCluster's, and
    DescribeGroups', for each user, with ALLOW, DENY, PREFIXED and implied ACLs."""
    clients = _clients(ctx)
    admin = clients["admin"]
    names = list(TOPIC_CASES)
    _topics(ctx, admin, names)
    ctx.record("commit", err(wire.commit_when_ready(admin, "am-g-ops", {("am-allow", 0): 0})))
    try:
        grant(
            ctx,
            admin,
            "acls",
            [a for acls in TOPIC_CASES.values() for a in acls]
            + [
                Acl(CLUSTER, CLUSTER_NAME, operation=ALTER, principal=ALICE),
                Acl(CLUSTER, CLUSTER_NAME, operation=DESCRIBE_CONFIGS, principal=BOB),
                Acl(CLUSTER, CLUSTER_NAME, operation=IDEMPOTENT_WRITE, principal=BOB),
                Acl(GROUP, "am-g-", PREFIXED, operation=READ, principal=ALICE),
                Acl(GROUP, "am-g-ops", operation=DELETE, principal=ALICE, permission=DENY),
            ],
        )
        for user, client in clients.items():
            meta = client.request(
                wire.METADATA,
                10,
                topics=[{"name": n, "topic_id": uuid.UUID(int=0)} for n in names],
                allow_auto_topic_creation=False,
                include_cluster_authorized_operations=True,
                include_topic_authorized_operations=True,
            )
            ctx.record(
                f"{user}.metadata",
                {
                    "cluster": int(meta.cluster_authorized_operations),
                    # Kafka lists more than four authorized topics in a hash set's order.
                    "topics": sorted(
                        (t.name, err(t.error_code), int(t.topic_authorized_operations))
                        for t in meta.topics
                    ),
                },
            )
            plain = wire.metadata(client, names[:1], version=10)
            ctx.record(
                f"{user}.metadata_not_requested",
                (
                    int(plain.cluster_authorized_operations),
                    [int(t.topic_authorized_operations) for t in plain.topics],
                ),
            )
            for include in (True, False):
                cluster = client.request(
                    wire.DESCRIBE_CLUSTER,
                    1,
                    include_cluster_authorized_operations=include,
                    endpoint_type=1,
                )
                ctx.record(
                    f"{user}.describe_cluster.{include}",
                    (err(cluster.error_code), int(cluster.cluster_authorized_operations)),
                )
            groups = client.request(
                wire.DESCRIBE_GROUPS, 5, groups=["am-g-ops"], include_authorized_operations=True
            ).groups
            ctx.record(
                f"{user}.describe_groups",
                [(err(g.error_code), int(g.authorized_operations)) for g in groups],
            )
    finally:
        revoke(admin)
        wire.delete_groups(admin, ["am-g-ops"])
        wire.delete_topics(admin, names)
