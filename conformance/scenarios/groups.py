"""Classic consumer groups at the protocol level: join, sync, heartbeat, rebalance, leave,
static members, session expiry, offsets, describe, list, delete."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from conformance import wire
from conformance.scenarios import Ctx, scenario
from conformance.wire import err


def _join(ctx: Ctx, client: Any, group: str, **kw: Any) -> tuple[str, Any]:
    """JoinGroup as a client does it: a first join without member id gets
    MEMBER_ID_REQUIRED and the id to rejoin with. Returns (first error, final response)."""
    first = wire.join_group(client, group, **kw)
    if first.error_code == 79 and first.member_id:  # MEMBER_ID_REQUIRED
        return err(first.error_code), wire.join_group(
            client, group, member_id=first.member_id, **kw
        )
    return err(first.error_code), first


def _joined(ctx: Ctx, first: str, response: Any) -> dict[str, Any]:
    return {
        "first_error": first,
        "error": err(response.error_code),
        "generation": response.generation_id,
        "protocol_type": response.protocol_type,
        "protocol": response.protocol_name,
        "leader_is_self": bool(response.member_id) and response.leader == response.member_id,
        "member": ctx.ident("member", response.member_id),
        "members": sorted(
            (ctx.ident("member", m.member_id), m.group_instance_id, bytes(m.metadata).hex())
            for m in response.members
        ),
    }


def _described(ctx: Ctx, client: Any, group: str) -> dict[str, Any]:
    response = wire.describe_groups(client, [group])
    g = response.groups[0]
    return {
        "error": err(g.error_code),
        "state": g.group_state,
        "protocol_type": g.protocol_type,
        "protocol": g.protocol_data,
        "members": sorted(
            (
                ctx.ident("member", m.member_id),
                m.group_instance_id,
                m.client_id,
                bytes(m.member_metadata).hex(),
                bytes(m.member_assignment).hex(),
            )
            for m in g.members
        ),
    }


def _topic(ctx: Ctx, client: Any, name: str, partitions: int = 2) -> None:
    ctx.record("create", err(wire.create_topic(client, name, partitions).error_code))
    ctx.check(wire.wait_for_topic(client, name, partitions), "topic ready")


@scenario()
def coordinator(ctx: Ctx) -> None:
    """FindCoordinator for a group (v4 batched and v3), a transaction key, a bad key type."""
    client = ctx.raw()
    found = wire.find_coordinator(client, "grp-find")
    ctx.record(
        "v4",
        {
            "error": err(found.error_code),
            "node": ctx.ident("node", found.node_id),
            "is_listener": f"{found.host}:{found.port}" == ctx.bootstrap,
        },
    )
    found = wire.find_coordinator(client, "grp-find", version=3)
    ctx.record(
        "v3",
        {
            "error": err(found.error_code),
            "node": ctx.ident("node", found.node_id),
            "is_listener": f"{found.host}:{found.port}" == ctx.bootstrap,
        },
    )
    md = wire.metadata(client, None)
    ctx.record("metadata_node", ctx.ident("node", md.brokers[0].node_id))
    found = wire.find_coordinator(client, "txn-id", key_type=1, retry_for=8.0)
    ctx.record("transaction_key", err(found.error_code))
    try:
        found = wire.find_coordinator(client, "x", key_type=7)
        ctx.record("bad_key_type", err(found.error_code))
    except (ConnectionError, OSError):
        ctx.record("bad_key_type", "connection closed")


@scenario()
def single_member_lifecycle(ctx: Ctx) -> None:
    """Join (member id required), sync, heartbeat, commit, fetch offsets, describe, list,
    leave, describe empty, delete, describe dead."""
    client = ctx.raw("lifecycle-client")
    _topic(ctx, client, "grp-life")
    first, joined = _join(ctx, client, "grp-life")
    ctx.record("join", _joined(ctx, first, joined))
    member, gen = joined.member_id, joined.generation_id
    ctx.check(joined.error_code == 0, "joined")
    synced = wire.sync_group(client, "grp-life", gen, member, {member: b"\x00\x01assign"})
    ctx.record(
        "sync",
        {
            "error": err(synced.error_code),
            "assignment": bytes(synced.assignment).hex(),
            "protocol_type": synced.protocol_type,
            "protocol": synced.protocol_name,
        },
    )
    ctx.record("heartbeat", err(wire.heartbeat(client, "grp-life", gen, member).error_code))
    committed = wire.offset_commit(
        client,
        "grp-life",
        {("grp-life", 0): 5, ("grp-life", 1): 0},
        generation=gen,
        member_id=member,
        metadata_text="meta",
    )
    ctx.record(
        "commit",
        sorted(
            (t.name, p.partition_index, err(p.error_code))
            for t in committed.topics
            for p in t.partitions
        ),
    )
    fetched = wire.offset_fetch(client, "grp-life", {"grp-life": [0, 1]})
    ctx.record("fetch", _offsets(fetched))
    fetched = wire.offset_fetch(client, "grp-life", None)
    ctx.record("fetch_all", _offsets(fetched))
    ctx.record("describe_stable", _described(ctx, client, "grp-life"))
    listed = wire.list_groups(client)
    ctx.record(
        "list",
        {
            "error": err(listed.error_code),
            "entry": [
                (g.group_id, g.protocol_type, g.group_state)
                for g in listed.groups
                if g.group_id == "grp-life"
            ],
        },
    )
    left = wire.leave_group(client, "grp-life", [(member, None)])
    ctx.record(
        "leave",
        {
            "error": err(left.error_code),
            "members": [
                (ctx.ident("member", m.member_id), err(m.error_code)) for m in left.members
            ],
        },
    )
    ctx.record("describe_empty", _described(ctx, client, "grp-life"))
    ctx.record(
        "fetch_after_leave", _offsets(wire.offset_fetch(client, "grp-life", {"grp-life": [0]}))
    )
    deleted = wire.delete_groups(client, ["grp-life", "grp-never-existed"])
    ctx.record("delete", sorted((r.group_id, err(r.error_code)) for r in deleted.results))
    ctx.record("describe_deleted", _described(ctx, client, "grp-life"))
    ctx.record(
        "fetch_after_delete", _offsets(wire.offset_fetch(client, "grp-life", {"grp-life": [0]}))
    )


def _offsets(response: Any) -> dict[str, Any]:
    return {
        "error": err(response.error_code),
        "partitions": sorted(
            (t.name, p.partition_index, p.committed_offset, p.metadata, err(p.error_code))
            for t in response.topics
            for p in t.partitions
        ),
    }


@scenario()
def rebalance_two_members(ctx: Ctx) -> None:
    """A second member joins: the first sees REBALANCE_IN_PROGRESS on heartbeat, both
    rejoin into generation 2 with one leader, the follower's sync waits for the leader's."""
    a, b = ctx.raw("member-a"), ctx.raw("member-b")
    _topic(ctx, a, "grp-reb")
    first, joined_a = _join(ctx, a, "grp-reb")
    ctx.record("a.join", _joined(ctx, first, joined_a))
    a_id, gen = joined_a.member_id, joined_a.generation_id
    ctx.check(joined_a.error_code == 0, "a joined")
    synced = wire.sync_group(a, "grp-reb", gen, a_id, {a_id: b"all"})
    ctx.record("a.sync", err(synced.error_code))

    with ThreadPoolExecutor(2) as pool:
        b_join = pool.submit(_join, ctx, b, "grp-reb")
        time.sleep(1.0)
        hb = wire.heartbeat(a, "grp-reb", gen, a_id)
        ctx.record("a.heartbeat_during_join", err(hb.error_code))
        ctx.record("describe_rebalancing.state", _described(ctx, ctx.raw(), "grp-reb")["state"])
        a_rejoin = pool.submit(wire.join_group, a, "grp-reb", a_id)
        rejoined_a = a_rejoin.result(30)
        first_b, joined_b = b_join.result(30)
    ctx.record("a.rejoin", _joined(ctx, "n/a", rejoined_a))
    ctx.record("b.join", _joined(ctx, first_b, joined_b))
    gen2 = rejoined_a.generation_id
    ctx.record("same_generation", gen2 == joined_b.generation_id)
    leader = a if rejoined_a.leader == a_id else b
    leader_id = rejoined_a.leader
    follower = b if leader is a else a
    follower_id = joined_b.member_id if leader is a else a_id
    with ThreadPoolExecutor(1) as pool:
        follower_sync = pool.submit(wire.sync_group, follower, "grp-reb", gen2, follower_id)
        time.sleep(0.5)
        ctx.record("follower_sync_waits", not follower_sync.done())
        leader_sync = wire.sync_group(
            leader, "grp-reb", gen2, leader_id, {leader_id: b"p0", follower_id: b"p1"}
        )
        fsync = follower_sync.result(30)
    ctx.record(
        "leader.sync",
        {
            "error": err(leader_sync.error_code),
            "assignment": bytes(leader_sync.assignment).decode(),
        },
    )
    ctx.record(
        "follower.sync",
        {"error": err(fsync.error_code), "assignment": bytes(fsync.assignment).decode()},
    )
    ctx.record("a.heartbeat", err(wire.heartbeat(a, "grp-reb", gen2, a_id).error_code))
    ctx.record(
        "a.heartbeat_old_generation", err(wire.heartbeat(a, "grp-reb", gen, a_id).error_code)
    )
    ctx.record(
        "heartbeat_unknown_member", err(wire.heartbeat(a, "grp-reb", gen2, "nobody").error_code)
    )
    commit = wire.offset_commit(a, "grp-reb", {("grp-reb", 0): 1}, generation=gen, member_id=a_id)
    ctx.record("commit_old_generation", err(commit.topics[0].partitions[0].error_code))
    commit = wire.offset_commit(
        a, "grp-reb", {("grp-reb", 0): 1}, generation=gen2, member_id="nobody"
    )
    ctx.record("commit_unknown_member", err(commit.topics[0].partitions[0].error_code))
    commit = wire.offset_commit(a, "grp-reb", {("grp-reb", 0): 1})
    ctx.record("commit_simple_on_active_group", err(commit.topics[0].partitions[0].error_code))
    deleted = wire.delete_groups(a, ["grp-reb"])
    ctx.record("delete_non_empty", err(deleted.results[0].error_code))
    ctx.record("describe_stable", _described(ctx, a, "grp-reb"))
    # B leaves: A must rejoin (REBALANCE_IN_PROGRESS) and becomes the only member.
    left = wire.leave_group(b, "grp-reb", [(joined_b.member_id, None)])
    ctx.record("b.leave", err(left.error_code))
    ctx.record("a.heartbeat_after_leave", err(wire.heartbeat(a, "grp-reb", gen2, a_id).error_code))
    again = wire.join_group(a, "grp-reb", a_id)
    ctx.record("a.rejoin_alone", _joined(ctx, "n/a", again))


@scenario()
def static_members(ctx: Ctx) -> None:
    """Static membership (group.instance.id): a restarted instance gets a new member id
    without a rebalance, the old member id is fenced, leave by instance id."""
    client = ctx.raw("static")
    _topic(ctx, client, "grp-static")
    first, joined = _join(ctx, client, "grp-static", instance_id="inst-1")
    ctx.record("join", _joined(ctx, first, joined))
    ctx.check(joined.error_code == 0, "joined")
    old_id, gen = joined.member_id, joined.generation_id
    synced = wire.sync_group(
        client, "grp-static", gen, old_id, {old_id: b"mine"}, instance_id="inst-1"
    )
    ctx.record("sync", err(synced.error_code))
    restarted = ctx.raw("static-restarted")
    first, again = _join(ctx, restarted, "grp-static", instance_id="inst-1")
    ctx.record("rejoin_after_restart", _joined(ctx, first, again))
    new_id = again.member_id
    ctx.record("new_member_id", new_id != old_id)
    hb = wire.heartbeat(client, "grp-static", gen, old_id, instance_id="inst-1")
    ctx.record("old_member_heartbeat", err(hb.error_code))
    synced = wire.sync_group(
        restarted, "grp-static", again.generation_id, new_id, {}, instance_id="inst-1"
    )
    ctx.record(
        "resync", {"error": err(synced.error_code), "assignment": bytes(synced.assignment).decode()}
    )
    ctx.record("describe", _described(ctx, restarted, "grp-static"))
    left = wire.leave_group(restarted, "grp-static", [("", "inst-1"), ("", "inst-unknown")])
    ctx.record(
        "leave_by_instance",
        {
            "error": err(left.error_code),
            "members": sorted(
                (m.group_instance_id, ctx.ident("member", m.member_id), err(m.error_code))
                for m in left.members
            ),
        },
    )
    ctx.record("describe_after_leave", _described(ctx, restarted, "grp-static")["state"])


@scenario(quick=False)
def session_expiry(ctx: Ctx) -> None:
    """A member that stops heartbeating is removed after its session timeout."""
    client = ctx.raw("expiring")
    _topic(ctx, client, "grp-expiry")
    first, joined = _join(ctx, client, "grp-expiry", session_timeout=6000)
    ctx.record("join", _joined(ctx, first, joined))
    ctx.check(joined.error_code == 0, "joined")
    member, gen = joined.member_id, joined.generation_id
    ctx.record(
        "sync", err(wire.sync_group(client, "grp-expiry", gen, member, {member: b"x"}).error_code)
    )
    time.sleep(3)
    ctx.record(
        "heartbeat_in_time", err(wire.heartbeat(client, "grp-expiry", gen, member).error_code)
    )
    time.sleep(9)
    ctx.record(
        "heartbeat_after_expiry", err(wire.heartbeat(client, "grp-expiry", gen, member).error_code)
    )
    ctx.record("describe", _described(ctx, client, "grp-expiry"))


@scenario()
def join_errors(ctx: Ctx) -> None:
    """Session timeouts out of range, inconsistent protocols, an unknown member id,
    sync/heartbeat for unknown groups, an empty group id."""
    client = ctx.raw()
    _topic(ctx, client, "grp-errors")
    first, joined = _join(ctx, client, "grp-errors-1", session_timeout=1)
    ctx.record("session_too_small", {"first": first, "error": err(joined.error_code)})
    first, joined = _join(ctx, client, "grp-errors-1", session_timeout=86_400_000)
    ctx.record("session_too_large", {"first": first, "error": err(joined.error_code)})
    first, joined = _join(ctx, client, "grp-errors-2")
    ctx.check(joined.error_code == 0, "joined")
    wire.sync_group(client, "grp-errors-2", joined.generation_id, joined.member_id, {})
    other = ctx.raw()
    first, bad = _join(
        ctx, other, "grp-errors-2", protocol_type="connect", protocols=[("other", b"")]
    )
    ctx.record("inconsistent_protocol_type", {"first": first, "error": err(bad.error_code)})
    first, bad = _join(ctx, other, "grp-errors-2", protocols=[("roundrobin", b"")])
    ctx.record("no_common_protocol", {"first": first, "error": err(bad.error_code)})
    unknown = wire.join_group(other, "grp-errors-2", member_id="made-up-member")
    ctx.record("unknown_member_id", err(unknown.error_code))
    ctx.record("empty_group_id", err(wire.join_group(other, "").error_code))
    ctx.record("sync_unknown_group", err(wire.sync_group(other, "grp-none", 1, "m", {}).error_code))
    ctx.record("heartbeat_unknown_group", err(wire.heartbeat(other, "grp-none", 1, "m").error_code))
    ctx.record(
        "sync_wrong_generation",
        err(wire.sync_group(client, "grp-errors-2", 99, joined.member_id, {}).error_code),
    )
    ctx.record(
        "leave_unknown_member",
        [
            err(m.error_code)
            for m in wire.leave_group(client, "grp-errors-2", [("nobody", None)]).members
        ],
    )
    ctx.record("describe_unknown", _described(ctx, client, "grp-none"))
    deleted = wire.delete_groups(client, ["grp-none"])
    ctx.record("delete_unknown", err(deleted.results[0].error_code))


@scenario()
def offsets_standalone(ctx: Ctx) -> None:
    """Offsets of a group with no members (as admin tools and assign() consumers use):
    commit with generation -1, fetch unknown partitions/groups, unknown topics,
    overwrite, metadata size limit, OffsetFetch v1 and v8 shapes."""
    client = ctx.raw()
    _topic(ctx, client, "grp-standalone", 3)
    commit = wire.offset_commit(
        client,
        "grp-simple",
        {("grp-standalone", 0): 10, ("grp-standalone", 2): 3},
        metadata_text=None,
    )
    ctx.record(
        "commit",
        sorted((p.partition_index, err(p.error_code)) for t in commit.topics for p in t.partitions),
    )
    commit = wire.offset_commit(client, "grp-simple", {("grp-standalone", 0): 12})
    ctx.record("overwrite", err(commit.topics[0].partitions[0].error_code))
    commit = wire.offset_commit(client, "grp-simple", {("grp-missing-topic", 0): 1})
    ctx.record("unknown_topic", err(commit.topics[0].partitions[0].error_code))
    commit = wire.offset_commit(client, "grp-simple", {("grp-standalone", 9): 1})
    ctx.record("unknown_partition", err(commit.topics[0].partitions[0].error_code))
    commit = wire.offset_commit(
        client, "grp-simple", {("grp-standalone", 1): 1}, metadata_text="m" * 5000
    )
    ctx.record("metadata_too_large", err(commit.topics[0].partitions[0].error_code))
    commit = wire.offset_commit(client, "grp-simple", {("grp-standalone", 1): -5})
    ctx.record("negative_offset", err(commit.topics[0].partitions[0].error_code))
    fetched = wire.offset_fetch(client, "grp-simple", {"grp-standalone": [0, 1, 2, 7]})
    ctx.record("fetch", _offsets(fetched))
    fetched = wire.offset_fetch(client, "grp-simple", {"grp-missing-topic": [0]})
    ctx.record("fetch_unknown_topic", _offsets(fetched))
    fetched = wire.offset_fetch(client, "grp-unknown-group", {"grp-standalone": [0]})
    ctx.record("fetch_unknown_group", _offsets(fetched))
    ctx.record("fetch_all", _offsets(wire.offset_fetch(client, "grp-simple", None)))
    v1 = client.request(
        wire.OFFSET_FETCH,
        1,
        group_id="grp-simple",
        topics=[{"name": "grp-standalone", "partition_indexes": [0]}],
    )
    ctx.record(
        "fetch_v1",
        [
            (p.partition_index, p.committed_offset, err(p.error_code))
            for t in v1.topics
            for p in t.partitions
        ],
    )
    v8 = client.request(
        wire.OFFSET_FETCH,
        8,
        groups=[
            {
                "group_id": "grp-simple",
                "topics": [{"name": "grp-standalone", "partition_indexes": [0, 2]}],
            },
            {"group_id": "grp-unknown-group", "topics": None},
        ],
        require_stable=False,
    )
    ctx.record(
        "fetch_v8",
        sorted(
            (
                g.group_id,
                err(g.error_code),
                tuple(
                    (t.name, p.partition_index, p.committed_offset)
                    for t in g.topics
                    for p in t.partitions
                ),
            )
            for g in v8.groups
        ),
    )
    listed = wire.list_groups(client)
    ctx.record(
        "listed",
        [
            (g.group_id, g.protocol_type, g.group_state)
            for g in listed.groups
            if g.group_id == "grp-simple"
        ],
    )
    ctx.record("describe", _described(ctx, client, "grp-simple"))
    deleted = wire.delete_groups(client, ["grp-simple"])
    ctx.record("delete", err(deleted.results[0].error_code))
    ctx.record(
        "fetch_after_delete",
        _offsets(wire.offset_fetch(client, "grp-simple", {"grp-standalone": [0]})),
    )


@scenario(quick=False)
def rebalance_timeout_drops_silent_member(ctx: Ctx) -> None:
    """A member that does not rejoin within the rebalance timeout is dropped from the new
    generation; it learns of it on its next heartbeat."""
    a, b = ctx.raw("silent-a"), ctx.raw("joiner-b")
    _topic(ctx, a, "grp-rebto")
    _first, joined_a = _join(ctx, a, "grp-rebto", session_timeout=30000, rebalance_timeout=3000)
    ctx.check(joined_a.error_code == 0, "a joined")
    a_id = joined_a.member_id
    wire.sync_group(a, "grp-rebto", joined_a.generation_id, a_id, {a_id: b"x"})
    started = time.monotonic()
    first, joined_b = _join(ctx, b, "grp-rebto", session_timeout=30000, rebalance_timeout=3000)
    took = time.monotonic() - started
    ctx.record("b.join", _joined(ctx, first, joined_b))
    ctx.record("b.join_waited_for_rebalance_timeout", 2.0 <= took <= 15.0)
    hb = wire.heartbeat(a, "grp-rebto", joined_a.generation_id, a_id)
    ctx.record("a.heartbeat_after", err(hb.error_code))


@scenario()
def internal_offsets_topic(ctx: Ctx) -> None:
    """After a group commits, all-topics Metadata lists __consumer_offsets as internal
    (clients such as franz-go's regex consumer expect to see and skip it)."""
    client = ctx.raw()
    _topic(ctx, client, "grp-internal", 1)
    ctx.record("coordinator", err(wire.find_coordinator(client, "grp-internal-g").error_code))
    code = wire.commit_when_ready(client, "grp-internal-g", {("grp-internal", 0): 1})
    ctx.record("commit", err(code))
    topics = {t.name: t for t in wire.metadata(client, None).topics}
    internal = topics.get("__consumer_offsets")
    ctx.record("listed", internal is not None)
    ctx.record("is_internal", None if internal is None else internal.is_internal)
    named = wire.metadata(client, ["__consumer_offsets"]).topics[0]
    ctx.record("by_name.error", err(named.error_code))
    ctx.record("by_name.is_internal", named.is_internal)


@scenario()
def describe_groups_v6(ctx: Ctx) -> None:
    """DescribeGroups v6 (KIP-1043): a group that does not exist is GROUP_ID_NOT_FOUND with
    a message, where v5 describes it as Dead; a group with only committed offsets."""
    client = ctx.raw()
    _topic(ctx, client, "grp-describe6", 1)
    code = wire.commit_when_ready(client, "grp-describe6-offsets", {("grp-describe6", 0): 5})
    ctx.record("commit", err(code))
    for version in (5, 6):
        response = wire.describe_groups(
            client, ["grp-describe6-missing", "grp-describe6-offsets"], version=version
        )
        ctx.record(
            f"v{version}",
            [
                {
                    "group": g.group_id,
                    "error": err(g.error_code),
                    "message": getattr(g, "error_message", None),
                    "state": g.group_state,
                    "protocol_type": g.protocol_type,
                    "members": len(g.members),
                }
                # Kafka's order follows its coordinator shards: compared by group id.
                for g in sorted(response.groups, key=lambda g: g.group_id)
            ],
        )


def _topic_id(client: Any, name: str) -> Any:
    return wire.metadata(client, [name]).topics[0].topic_id


def _commit_by_id(client: Any, group: str, topic_id: Any, offsets: dict[int, int]) -> Any:
    return client.request(
        wire.OFFSET_COMMIT,
        10,
        group_id=group,
        generation_id_or_member_epoch=-1,
        member_id="",
        group_instance_id=None,
        topics=[
            {
                "topic_id": topic_id,
                "partitions": [
                    {
                        "partition_index": p,
                        "committed_offset": o,
                        "committed_leader_epoch": -1,
                        "committed_metadata": "",
                    }
                    for p, o in offsets.items()
                ],
            }
        ],
    )


def _fetch_by_id(client: Any, group: str, topics: dict[Any, list[int]] | None) -> Any:
    return client.request(
        wire.OFFSET_FETCH,
        10,
        groups=[
            {
                "group_id": group,
                "member_id": None,
                "member_epoch": -1,
                "topics": None
                if topics is None
                else [{"topic_id": t, "partition_indexes": p} for t, p in topics.items()],
            }
        ],
        require_stable=False,
    )


@scenario()
def offsets_by_topic_id(ctx: Ctx) -> None:
    """OffsetCommit v10 and OffsetFetch v10 (KIP-848's topic ids): commit and fetch by id,
    an unknown id, all topics, and the same offsets read by name (v9)."""
    client = ctx.raw()
    _topic(ctx, client, "grp-ids", 2)
    topic_id = _topic_id(client, "grp-ids")
    unknown = uuid.UUID(int=12345)
    code = wire.commit_when_ready(client, "grp-ids-g", {("grp-ids", 1): 1})
    ctx.record("first_commit", err(code))

    def committed(response: Any) -> list[Any]:
        return [
            (
                "known" if t.topic_id == topic_id else str(t.topic_id),
                getattr(t, "name", None),
                sorted((p.partition_index, err(p.error_code)) for p in t.partitions),
            )
            for t in response.topics
        ]

    ctx.record("commit", committed(_commit_by_id(client, "grp-ids-g", topic_id, {0: 7, 1: 3})))
    ctx.record("commit_unknown", committed(_commit_by_id(client, "grp-ids-g", unknown, {0: 1})))
    ctx.record(
        "commit_bad_partition", committed(_commit_by_id(client, "grp-ids-g", topic_id, {9: 1}))
    )

    def fetched(response: Any) -> Any:
        group = response.groups[0]
        return {
            "error": err(group.error_code),
            "topics": sorted(
                (
                    "known" if t.topic_id == topic_id else str(t.topic_id),
                    getattr(t, "name", None),
                    sorted(
                        (p.partition_index, p.committed_offset, err(p.error_code))
                        for p in t.partitions
                    ),
                )
                for t in group.topics
            ),
        }

    ctx.record("fetch", fetched(_fetch_by_id(client, "grp-ids-g", {topic_id: [0, 1, 5]})))
    ctx.record("fetch_unknown", fetched(_fetch_by_id(client, "grp-ids-g", {unknown: [0]})))
    ctx.record("fetch_all", fetched(_fetch_by_id(client, "grp-ids-g", None)))
    by_name = wire.offset_fetch(client, "grp-ids-g", {"grp-ids": [0, 1]})
    ctx.record("fetch_by_name", _offsets(by_name))


@scenario()
def delete_groups_v3(ctx: Ctx) -> None:
    """DeleteGroups v3: each result carries an error message (null on success)."""
    client = ctx.raw()
    _topic(ctx, client, "grp-delete3", 1)
    code = wire.commit_when_ready(client, "grp-delete3-empty", {("grp-delete3", 0): 1})
    ctx.record("commit", err(code))
    first, joined = _join(ctx, client, "grp-delete3-busy")
    ctx.record("join", _joined(ctx, first, joined))
    response = client.request(
        wire.DELETE_GROUPS,
        3,
        groups_names=["grp-delete3-empty", "grp-delete3-busy", "grp-delete3-missing"],
    )
    ctx.record(
        "results",
        sorted((r.group_id, err(r.error_code), r.error_message) for r in response.results),
    )
