"""Kafka ACLs with the StandardAuthorizer, on a PLAINTEXT listener (every client is
User:ANONYMOUS): the ACL APIs, and what each API answers when ACLs allow or deny it.
The matrix with real SASL principals (admin, alice, bob) is in acl_sasl.py.

Both brokers run with `authorizer.class.name` = StandardAuthorizer and
`allow.everyone.if.no.acl.found=true`: the reference broker's own controller connection
is PLAINTEXT (ANONYMOUS) too and needs CLUSTER_ACTION, so a resource with no ACL stays
open; a resource gets closed to ANONYMOUS by giving an ACL to someone else (User:alice),
which is the `allow.everyone.if.no.acl.found=false` situation for that resource. Every
cluster ACL a scenario adds keeps ALLOW CLUSTER_ACTION and ALTER for ANONYMOUS.

Every scenario deletes its ACLs at the end. The settings, codes and ACL helpers are in
_acl_common.py; CIDR hosts in acl_hosts.py, the bounds of ACL requests in acl_bounds.py.
"""

from __future__ import annotations

from typing import Any

from conformance import wire
from conformance.scenarios import Ctx, scenario
from conformance.scenarios._acl_common import (
    ALICE,
    ALL,
    ALTER_CONFIGS,
    ANY,
    CLUSTER,
    CLUSTER_KEEP,
    CLUSTER_NAME,
    CREATE,
    DELETE,
    DENY,
    DESCRIBE,
    DESCRIBE_CONFIGS,
    GROUP,
    IDEMPOTENT_WRITE,
    LITERAL,
    MATCH,
    OPEN,
    PREFIXED,
    READ,
    SUPER,
    TOPIC,
    TXN,
    WRITE,
    deleted_bindings,
    described,
    grant,
    revoke,
    settle,
)
from conformance.wire import Acl, acl_filter, err
from tests.support.rawclient import RawClient


def _topic(ctx: Ctx, client: RawClient, name: str, partitions: int = 1) -> None:
    wire.create_topic(client, name, partitions)
    ctx.check(wire.wait_for_topic(client, name, partitions), f"topic {name} ready")


def _produce(client: RawClient, topic: str) -> str:
    return err(wire.produce(client, topic, wire.encode_batch([b"v"])).error_code)


def _fetch(client: RawClient, topic: str) -> str:
    return err(wire.fetch_one(client, topic, 0).error_code)


def _metadata(client: RawClient, topics: list[str] | None, auto_create: bool = False) -> Any:
    response = wire.metadata(client, topics, auto_create=auto_create)
    return [(t.name, err(t.error_code)) for t in response.topics]


# -- the ACL APIs ------------------------------------------------------------------------


@scenario(settings=OPEN)
def api_round_trip(ctx: Ctx) -> None:
    """CreateAcls (valid and invalid bindings), DescribeAcls with ANY / MATCH / LITERAL /
    PREFIXED / principal / operation filters, DeleteAcls with several filters."""
    client = ctx.raw()
    try:
        ctx.record("empty", described(client))
        grant(
            ctx,
            client,
            "create",
            [
                Acl(TOPIC, "acl-rt-orders", operation=READ, principal=ALICE),
                Acl(TOPIC, "acl-rt-", PREFIXED, operation=WRITE, permission=DENY),
                Acl(TOPIC, "*", operation=DESCRIBE, principal="User:*", host="10.0.0.1"),
                Acl(GROUP, "acl-rt-group", operation=ALL),
                Acl(TXN, "acl-rt-txn", operation=WRITE, principal=ALICE),
                Acl(TOPIC, "acl-rt-orders", operation=READ, principal=ALICE),  # again
            ],
        )
        invalid = {
            "resource_type_any": Acl(ANY, "x"),
            "pattern_match": Acl(TOPIC, "x", MATCH),
            "operation_any": Acl(TOPIC, "x", operation=ANY),
            "permission_any": Acl(TOPIC, "x", permission=ANY),
            "empty_name": Acl(TOPIC, ""),
            "cluster_name": Acl(CLUSTER, "not-the-cluster"),
            "principal_without_type": Acl(TOPIC, "x", principal="alice"),
        }
        for case, acl in invalid.items():
            result = wire.create_acls(client, [acl]).results[0]
            ctx.record(f"invalid.{case}", (err(result.error_code), result.error_message))
        ctx.record("all", described(client))
        ctx.record("match_orders", described(client, name="acl-rt-orders", pattern_type=MATCH))
        ctx.record("literal_orders", described(client, name="acl-rt-orders", pattern_type=LITERAL))
        ctx.record("prefixed", described(client, pattern_type=PREFIXED))
        ctx.record("any_name", described(client, name="acl-rt-", pattern_type=ANY))
        ctx.record("alice", described(client, principal=ALICE))
        ctx.record("groups", described(client, resource_type=GROUP))
        ctx.record("deny", described(client, permission=DENY))
        ctx.record("read", described(client, operation=READ))
        ctx.record("host", described(client, host="10.0.0.1"))
        deleted = wire.delete_acls(
            client,
            [
                acl_filter(resource_type=TOPIC, name="acl-rt-orders", pattern_type=MATCH),
                acl_filter(principal=ALICE),  # alice's topic ACL went with the first filter
                acl_filter(resource_type=GROUP, name="nothing-here"),
            ],
        )
        ctx.record("deleted", deleted_bindings(deleted))
        ctx.check(settle(client, 1), "deletions visible")
        ctx.record("left", described(client))
    finally:
        revoke(client)


# -- topics ------------------------------------------------------------------------------


@scenario(settings=OPEN)
def topic_closed_then_opened(ctx: Ctx) -> None:
    """A topic with an ACL for someone else only: every topic API refuses ANONYMOUS
    (TOPIC_AUTHORIZATION_FAILED), Metadata of all topics hides it. Then WRITE (which
    implies DESCRIBE but not READ), READ, and a DENY from the client's host."""
    client = ctx.raw()
    name = "acl-topic-a"
    _topic(ctx, client, name)
    ctx.record("produce_open", _produce(client, name))
    try:
        grant(
            ctx,
            client,
            "close",
            [*CLUSTER_KEEP, Acl(TOPIC, name, operation=READ, principal=ALICE)],
        )
        ctx.record("produce", _produce(client, name))
        ctx.record("fetch", _fetch(client, name))
        ctx.record("list_offsets", err(wire.list_offsets(client, name, -1).error_code))
        ctx.record("metadata", _metadata(client, [name]))
        ctx.record("metadata_all_lists_it", name in dict(_metadata(client, None)))
        ctx.record("delete_records", err(wire.delete_records(client, name, 0).error_code))
        configs = wire.describe_configs(client, wire.TOPIC_RESOURCE, name)
        ctx.record("describe_configs", err(configs.error_code))
        partitions = wire.create_partitions(client, name, 2)
        ctx.record("create_partitions", err(partitions.error_code))
        deleted = wire.delete_topics(client, [name])
        ctx.record("delete_topics", err(deleted.responses[0].error_code))

        grant(ctx, client, "allow_write", [Acl(TOPIC, name, operation=WRITE)])
        ctx.record("write.produce", _produce(client, name))
        ctx.record("write.fetch", _fetch(client, name))
        ctx.record("write.list_offsets", err(wire.list_offsets(client, name, -1).error_code))
        ctx.record("write.metadata", _metadata(client, [name]))
        configs = wire.describe_configs(client, wire.TOPIC_RESOURCE, name)
        ctx.record("write.describe_configs", err(configs.error_code))

        grant(ctx, client, "allow_read", [Acl(TOPIC, name, operation=READ)])
        ctx.record("read.fetch", _fetch(client, name))

        grant(
            ctx,
            client,
            "deny_host",
            [Acl(TOPIC, name, operation=WRITE, host="127.0.0.1", permission=DENY)],
        )
        ctx.record("deny.produce", _produce(client, name))
        ctx.record("deny.fetch", _fetch(client, name))
    finally:
        revoke(client)


@scenario(settings=OPEN)
def prefixed_and_wildcard(ctx: Ctx) -> None:
    """A PREFIXED ALLOW, a LITERAL `*` DENY for another operation, `User:*` principals;
    DENY wins over ALLOW; ALL grants everything; Metadata of all topics lists only the
    describable ones."""
    client = ctx.raw()
    names = ["acl-pre-one", "acl-pre-two", "acl-other"]
    for name in names:
        _topic(ctx, client, name)
    try:
        grant(
            ctx,
            client,
            "acls",
            [
                Acl(TOPIC, "acl-pre-", PREFIXED, operation=WRITE, principal="User:*"),
                Acl(TOPIC, "*", operation=DELETE, permission=DENY),
                Acl(TOPIC, "acl-pre-two", operation=WRITE, permission=DENY),
            ],
        )
        ctx.record("produce", {n: _produce(client, n) for n in names})
        ctx.record("fetch", {n: _fetch(client, n) for n in names})
        listed = dict(_metadata(client, None))
        ctx.record("metadata_all", {n: n in listed for n in names})
        ctx.record("delete_records", err(wire.delete_records(client, "acl-other", 0).error_code))
        grant(ctx, client, "all", [Acl(TOPIC, "acl-other", operation=ALL)])
        ctx.record("all.produce", _produce(client, "acl-other"))
        ctx.record("all.fetch", _fetch(client, "acl-other"))
        ctx.record(
            "all.delete_records", err(wire.delete_records(client, "acl-other", 0).error_code)
        )
    finally:
        revoke(client)
        wire.delete_topics(client, names)


@scenario(settings=OPEN)
def create_and_auto_create(ctx: Ctx) -> None:
    """CreateTopics needs CREATE on the cluster or the topic; Metadata auto-creation too
    (and DESCRIBE on the topic to see it at all)."""
    client = ctx.raw()
    try:
        grant(
            ctx,
            client,
            "acls",
            [
                *CLUSTER_KEEP,
                Acl(TOPIC, "acl-auto-described", operation=DESCRIBE),
                Acl(TOPIC, "acl-auto-created", operation=DESCRIBE),
                Acl(TOPIC, "acl-auto-created", operation=CREATE),
                Acl(TOPIC, "acl-create-", PREFIXED, operation=CREATE, principal=ALICE),
            ],
        )
        ctx.record(
            "auto_create",
            _metadata(
                client,
                ["acl-auto-described", "acl-auto-created", "acl-create-hidden"],
                auto_create=True,
            ),
        )
        created = wire.create_topics(
            client, [{"name": "acl-create-refused"}, {"name": "acl-free-topic"}]
        )
        ctx.record(
            "create_topics",
            [(t.name, err(t.error_code), t.error_message) for t in created.topics],
        )
    finally:
        revoke(client)
        wire.delete_topics(client, ["acl-auto-created", "acl-free-topic"])


@scenario(settings=OPEN)
def request_bounds_count_authorized_topics(ctx: Ctx) -> None:
    """Kafka's controller sees only the topics the principal may create or alter: a
    refused topic asking for more partitions than one request may create is answered
    TOPIC_AUTHORIZATION_FAILED and does not refuse the others (CreateTopics,
    CreatePartitions)."""
    client = ctx.raw()
    try:
        _topic(ctx, client, "acl-bound-open")
        _topic(ctx, client, "acl-bound-closed")
        grant(
            ctx,
            client,
            "acls",
            [
                *CLUSTER_KEEP,
                Acl(TOPIC, "acl-bound-closed", operation=ALL, principal=ALICE),
                Acl(TOPIC, "acl-bound-refused", operation=ALL, principal=ALICE),
            ],
        )
        created = wire.create_topics(
            client,
            [
                {"name": "acl-bound-refused", "partitions": 10_001},
                {"name": "acl-bound-new", "partitions": 1},
            ],
            validate_only=True,
        )
        ctx.record(
            "create_topics",
            [(t.name, err(t.error_code), t.error_message) for t in created.topics],
        )
        grown = client.request(
            wire.CREATE_PARTITIONS,
            3,
            topics=[
                {"name": "acl-bound-closed", "count": 10_002, "assignments": None},
                {"name": "acl-bound-open", "count": 2, "assignments": None},
            ],
            timeout=10000,
            validate_only=True,
        )
        ctx.record(
            "create_partitions",
            [(r.name, err(r.error_code), r.error_message) for r in grown.results],
        )
    finally:
        revoke(client)
        wire.delete_topics(client, ["acl-bound-open", "acl-bound-closed"])


# -- groups ------------------------------------------------------------------------------


@scenario(settings=OPEN)
def group_closed_then_opened(ctx: Ctx) -> None:
    """A group with an ACL for someone else only: FindCoordinator, JoinGroup,
    OffsetCommit, OffsetFetch, DescribeGroups, DeleteGroups answer
    GROUP_AUTHORIZATION_FAILED; ListGroups leaves it out. READ on the group then allows
    committing (with READ on the topic) and fetching offsets, not deleting."""
    client = ctx.raw()
    topic, group = "acl-group-topic", "acl-group-g"
    _topic(ctx, client, topic)
    ctx.record("commit_open", err(wire.commit_when_ready(client, group, {(topic, 0): 0})))
    try:
        grant(ctx, client, "close", [Acl(GROUP, group, operation=READ, principal=ALICE)])
        ctx.record("find_coordinator", err(wire.find_coordinator(client, group).error_code))
        ctx.record("join", err(wire.join_group(client, group).error_code))
        commit = wire.offset_commit(client, group, {(topic, 0): 1})
        ctx.record("commit", err(commit.topics[0].partitions[0].error_code))
        ctx.record("offset_fetch", err(wire.offset_fetch(client, group, {topic: [0]}).error_code))
        described_groups = wire.describe_groups(client, [group])
        ctx.record("describe", err(described_groups.groups[0].error_code))
        listed = [g.group_id for g in wire.list_groups(client).groups]
        ctx.record("listed", group in listed)
        ctx.record("delete", err(wire.delete_groups(client, [group]).results[0].error_code))

        grant(
            ctx,
            client,
            "allow_read",
            [
                Acl(GROUP, group, operation=READ),
                Acl(TOPIC, topic, operation=DESCRIBE, principal=ALICE),
            ],
        )
        commit = wire.offset_commit(client, group, {(topic, 0): 1})
        ctx.record("read.commit_topic_closed", err(commit.topics[0].partitions[0].error_code))
        fetched = wire.offset_fetch(client, group, {topic: [0]})
        ctx.record(
            "read.offset_fetch_topic_closed",
            (
                err(fetched.error_code),
                [err(p.error_code) for t in fetched.topics for p in t.partitions],
            ),
        )
        all_fetched = wire.offset_fetch(client, group, None)
        ctx.record("read.offset_fetch_all", [t.name for t in all_fetched.topics])
        grant(ctx, client, "allow_topic", [Acl(TOPIC, topic, operation=READ)])
        commit = wire.offset_commit(client, group, {(topic, 0): 1})
        ctx.record("read.commit", err(commit.topics[0].partitions[0].error_code))
        fetched = wire.offset_fetch(client, group, {topic: [0]})
        ctx.record(
            "read.offset_fetch",
            [
                (err(p.error_code), int(p.committed_offset))
                for t in fetched.topics
                for p in t.partitions
            ],
        )
        ctx.record("read.find_coordinator", err(wire.find_coordinator(client, group).error_code))
        ctx.record("read.describe", err(wire.describe_groups(client, [group]).groups[0].error_code))
        ctx.record("read.delete", err(wire.delete_groups(client, [group]).results[0].error_code))
    finally:
        revoke(client)
        wire.delete_groups(client, [group])


# -- the cluster -------------------------------------------------------------------------


@scenario(settings=OPEN)
def cluster_operations(ctx: Ctx) -> None:
    """Cluster ACLs: DESCRIBE denied refuses DescribeAcls and ListGroups falls back to
    the groups one may describe; DESCRIBE_CONFIGS on the broker; InitProducerId needs
    IDEMPOTENT_WRITE on the cluster or WRITE on some topic."""
    client = ctx.raw()
    try:
        grant(ctx, client, "keep", CLUSTER_KEEP)
        ctx.record("describe_acls_via_alter", described(client, resource_type=CLUSTER))
        broker_configs = wire.describe_configs(client, wire.BROKER_RESOURCE, "1")
        ctx.record("broker_configs", err(broker_configs.error_code))
        ctx.record("init_producer_id", err(wire.init_producer_id(client).error_code))
        grant(
            ctx,
            client,
            "deny_describe",
            [Acl(CLUSTER, CLUSTER_NAME, operation=DESCRIBE, permission=DENY)],
            visible=lambda: described(client) == "cluster_authorization_failed",
        )
        # DescribeAcls is refused now, so the change is checked by its effect.
        ctx.record("describe_acls", described(client))
        deleted = wire.delete_acls(
            client, [acl_filter(resource_type=CLUSTER, operation=DESCRIBE, permission=DENY)]
        )
        ctx.record("undeny", deleted_bindings(deleted))
        ctx.check(settle(client, 2), "undeny visible")
        grant(ctx, client, "topics_for_alice", [Acl(TOPIC, "*", operation=ALL, principal=ALICE)])
        ctx.record("init_producer_id_no_write", err(wire.init_producer_id(client).error_code))
        grant(ctx, client, "one_topic", [Acl(TOPIC, "acl-some-topic", operation=WRITE)])
        ctx.record("init_producer_id_some_write", err(wire.init_producer_id(client).error_code))
        grant(ctx, client, "idempotent", [Acl(CLUSTER, CLUSTER_NAME, operation=IDEMPOTENT_WRITE)])
        ctx.record("init_producer_id_idempotent", err(wire.init_producer_id(client).error_code))
    finally:
        revoke(client)


# -- super users --------------------------------------------------------------------------


@scenario(quick=False, settings=SUPER)
def super_user_ignores_deny(ctx: Ctx) -> None:
    """`super.users` (semicolon-separated) names ANONYMOUS: a DENY ALL for everyone and
    allow.everyone.if.no.acl.found=false change nothing for it."""
    client = ctx.raw()
    name = "acl-super-topic"
    _topic(ctx, client, name)
    try:
        grant(
            ctx,
            client,
            "deny_all",
            [Acl(TOPIC, "*", operation=ALL, principal="User:*", permission=DENY)],
        )
        ctx.record("produce", _produce(client, name))
        ctx.record("fetch", _fetch(client, name))
        ctx.record("metadata", _metadata(client, [name]))
    finally:
        revoke(client)


# -- whole-request refusals and their response shapes ------------------------------------


@scenario(settings=OPEN)
def group_requests_refused(ctx: Ctx) -> None:
    """JoinGroup, SyncGroup, Heartbeat, LeaveGroup and OffsetDelete refused for the
    group (the whole response), DescribeGroups' authorized operations, and the
    transactional id checks of FindCoordinator and InitProducerId."""
    client = ctx.raw()
    topic, group, other = "acl-member-topic", "acl-member-g", "acl-member-open"
    _topic(ctx, client, topic)
    wire.find_coordinator(client, other)
    try:
        grant(
            ctx,
            client,
            "acls",
            [
                Acl(GROUP, group, operation=READ, principal=ALICE),
                Acl(GROUP, other, operation=READ),
                Acl(GROUP, other, operation=DESCRIBE_CONFIGS),
                Acl(TXN, "acl-txn", operation=WRITE, principal=ALICE),
            ],
        )
        joined = wire.join_group(client, group)
        ctx.record(
            "join",
            {
                "error": err(joined.error_code),
                "generation": int(joined.generation_id),
                "protocol_name": joined.protocol_name,
                "leader": joined.leader,
                "member_id": joined.member_id,
                "members": len(joined.members),
            },
        )
        synced = wire.sync_group(client, group, 1, "m")
        ctx.record(
            "sync",
            (err(synced.error_code), synced.protocol_type, synced.protocol_name, synced.assignment),
        )
        ctx.record("heartbeat", err(wire.heartbeat(client, group, 1, "m").error_code))
        left = wire.leave_group(client, group, [("m", None)])
        ctx.record("leave", (err(left.error_code), len(left.members)))
        deleted = client.request(
            47,
            0,
            group_id=group,
            topics=[{"name": topic, "partitions": [{"partition_index": 0}]}],
        )
        ctx.record("offset_delete", (err(deleted.error_code), len(deleted.topics)))
        described_groups = client.request(
            wire.DESCRIBE_GROUPS, 5, groups=[other], include_authorized_operations=True
        )
        ctx.record(
            "describe_operations",
            [(err(g.error_code), int(g.authorized_operations)) for g in described_groups.groups],
        )
        ctx.record("txn_coordinator", err(wire.find_coordinator(client, "acl-txn", 1).error_code))
        refused = wire.init_producer_id(client, transactional_id="acl-txn")
        ctx.record(
            "txn_init",
            (err(refused.error_code), int(refused.producer_id), int(refused.producer_epoch)),
        )
    finally:
        revoke(client)


@scenario(settings=OPEN)
def configs_refused(ctx: Ctx) -> None:
    """AlterConfigs and IncrementalAlterConfigs need ALTER_CONFIGS on the topic (or the
    cluster for a broker); DescribeConfigs DESCRIBE_CONFIGS, which ALTER_CONFIGS implies."""
    client = ctx.raw()
    name = "acl-configs-topic"
    _topic(ctx, client, name)
    try:
        grant(
            ctx,
            client,
            "acls",
            [*CLUSTER_KEEP, Acl(TOPIC, name, operation=DESCRIBE_CONFIGS)],
        )
        altered = wire.alter_configs(client, name, {"retention.ms": "1000"})
        ctx.record("alter", (err(altered.error_code), altered.error_message))
        altered = wire.incremental_alter_configs(client, name, [("retention.ms", 0, "1000")])
        ctx.record("incremental", (err(altered.error_code), altered.error_message))
        described_configs = wire.describe_configs(client, wire.TOPIC_RESOURCE, name)
        ctx.record("describe", err(described_configs.error_code))
        broker = wire.incremental_alter_configs(
            client, "1", [("log.cleaner.threads", 0, "2")], resource_type=wire.BROKER_RESOURCE
        )
        ctx.record("broker", (err(broker.error_code), broker.error_message))
        grant(ctx, client, "alter_configs", [Acl(TOPIC, name, operation=ALTER_CONFIGS)])
        altered = wire.incremental_alter_configs(client, name, [("retention.ms", 0, "1000")])
        ctx.record("allowed.incremental", err(altered.error_code))
    finally:
        revoke(client)
        wire.delete_topics(client, [name])
