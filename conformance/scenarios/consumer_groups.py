"""The KIP-848 consumer group protocol on the wire, step by step, against both brokers:
member and group epochs, the uniform assignor's split, revocation before a partition
moves, ConsumerGroupDescribe, the errors Kafka gives, offsets checked by member epoch,
and one protocol per group."""

from __future__ import annotations

import time
from typing import Any

from conformance import wire
from conformance.scenarios import Ctx, scenario
from conformance.wire import err

CONSUMER_GROUP_HEARTBEAT = 68
CONSUMER_GROUP_DESCRIBE = 69


def _heartbeat(
    client: Any,
    group: str,
    member_id: str,
    epoch: int,
    *,
    topics: list[str] | None = None,
    owned: list[int] | None = None,
    topic_id: Any = None,
    rebalance_timeout: int = 30000,
    assignor: str | None = None,
    instance_id: str | None = None,
    regex: str | None = None,
) -> Any:
    joining = epoch == 0
    return client.request(
        CONSUMER_GROUP_HEARTBEAT,
        1,
        group_id=group,
        member_id=member_id,
        member_epoch=epoch,
        instance_id=instance_id,
        rack_id=None,
        rebalance_timeout=rebalance_timeout if joining else -1,
        subscribed_topic_names=topics,
        subscribed_topic_regex=regex,
        server_assignor=assignor,
        topic_partitions=(
            [] if joining else None
        ) if owned is None else [{"topic_id": topic_id, "partitions": owned}],
    )  # fmt: skip


def _answer(response: Any) -> dict[str, Any]:
    assignment = response.assignment
    partitions = None
    if assignment is not None:
        partitions = sorted(p for t in assignment.topic_partitions for p in t.partitions)
    return {
        "error": err(response.error_code),
        "epoch": response.member_epoch,
        "assignment": partitions,
    }


def _describe(client: Any, groups: list[str]) -> list[dict[str, Any]]:
    response = client.request(
        CONSUMER_GROUP_DESCRIBE, 1, group_ids=groups, include_authorized_operations=False
    )
    described = []
    for group in response.groups:
        members = sorted(
            (
                m.member_id,
                m.member_epoch,
                list(m.subscribed_topic_names),
                sorted(p for t in m.assignment.topic_partitions for p in t.partitions),
                sorted(p for t in m.target_assignment.topic_partitions for p in t.partitions),
                m.member_type,
            )
            for m in group.members
        )
        described.append(
            {
                "error": err(group.error_code),
                "message": group.error_message,
                "state": group.group_state,
                "group_epoch": group.group_epoch,
                "assignment_epoch": group.assignment_epoch,
                "assignor": group.assignor_name,
                "members": [list(m) for m in members],
            }
        )
    return described


def _partitions(response: Any) -> list[int]:
    if response.assignment is None:
        return []
    return sorted(p for t in response.assignment.topic_partitions for p in t.partitions)


def _until_assigned(call: Any, timeout_s: float = 10.0) -> Any:
    """Heartbeat until the answer carries an assignment: Kafka 4.3+ computes a new target
    at most once per group.consumer.assignment.interval.ms (1 s), at a heartbeat."""
    deadline = time.monotonic() + timeout_s
    while True:
        response = call()
        if response.assignment is not None or time.monotonic() > deadline:
            return response
        time.sleep(0.25)


@scenario()
def join_revoke_handover(ctx: Ctx) -> None:
    """Two members split six partitions: the second gets nothing until the first has
    revoked in a heartbeat; a leave hands its partitions back."""
    client = ctx.raw()
    topic, group = "cg848-handover", "cg848-handover-group"
    ctx.record("create", err(wire.create_topic(client, topic, 6).error_code))
    ctx.check(wire.wait_for_topic(client, topic, 6), "topic ready")
    topic_id = wire.metadata(client, [topic]).topics[0].topic_id
    wire.find_coordinator(client, group)
    one = wire.retry_coordinator(lambda: _heartbeat(client, group, "m-one", 0, topics=[topic]))
    ctx.record("one.join", _answer(one))
    ctx.check(one.error_code == 0, "first member joined")
    two = _heartbeat(client, group, "m-two", 0, topics=[topic])
    ctx.record("two.join", _answer(two))
    ctx.record("describe.assigning", _describe(client, [group]))
    epoch_one, epoch_two = one.member_epoch, two.member_epoch
    told = _until_assigned(
        lambda: _heartbeat(
            client, group, "m-one", epoch_one, owned=list(range(6)), topic_id=topic_id
        )
    )
    ctx.record("one.told_to_revoke", _answer(told))
    ctx.record("describe.reconciling", _describe(client, [group]))
    kept = _partitions(told)
    early = _heartbeat(client, group, "m-two", epoch_two, owned=[], topic_id=topic_id)
    ctx.record("two.before_release", _answer(early))
    epoch_two = early.member_epoch
    released = _heartbeat(client, group, "m-one", told.member_epoch, owned=kept, topic_id=topic_id)
    ctx.record("one.released", _answer(released))
    epoch_one = released.member_epoch
    late = _heartbeat(client, group, "m-two", epoch_two, owned=[], topic_id=topic_id)
    ctx.record("two.after_release", _answer(late))
    got = _partitions(late)
    settled = _heartbeat(client, group, "m-two", late.member_epoch, owned=got, topic_id=topic_id)
    ctx.record("two.owns", _answer(settled))
    ctx.record("describe.stable", _describe(client, [group]))
    stale = _heartbeat(client, group, "m-two", epoch_two - 1, owned=[], topic_id=topic_id)
    ctx.record("two.stale_epoch", _answer(stale))
    left = _heartbeat(client, group, "m-two", -1)
    ctx.record("two.leave", _answer(left))
    ctx.record("describe.after_leave", _describe(client, [group]))
    back = _until_assigned(
        lambda: _heartbeat(client, group, "m-one", epoch_one, owned=kept, topic_id=topic_id)
    )
    ctx.record("one.after_leave", _answer(back))
    ctx.record("describe.alone", _describe(client, [group]))
    _heartbeat(client, group, "m-one", -1)


@scenario()
def errors(ctx: Ctx) -> None:
    """The errors of ConsumerGroupHeartbeat, ConsumerGroupDescribe, a classic JoinGroup on
    a consumer group, and OffsetCommit v9 by member epoch."""
    client = ctx.raw()
    topic, group = "cg848-errors", "cg848-errors-group"
    ctx.record("create", err(wire.create_topic(client, topic, 2).error_code))
    ctx.check(wire.wait_for_topic(client, topic, 2), "topic ready")
    wire.find_coordinator(client, group)
    joined = wire.retry_coordinator(lambda: _heartbeat(client, group, "m-e", 0, topics=[topic]))
    # Only the error: Kafka answers the first heartbeat with an empty assignment when its
    # metadata image has not caught up with the just-created topic (a race, not a rule).
    ctx.record("join", {"error": err(joined.error_code)})
    ctx.check(joined.error_code == 0, "joined")
    cases = {
        "unknown_group": lambda: _heartbeat(client, "cg848-nowhere", "m-e", 1),
        "unknown_member": lambda: _heartbeat(client, group, "m-ghost", 1),
        "epoch_ahead": lambda: _heartbeat(client, group, "m-e", 9),
        "epoch_invalid": lambda: _heartbeat(client, group, "m-e", -3),
        "no_member_id": lambda: _heartbeat(client, group, "", 1),
        "join_without_timeout": lambda: _heartbeat(
            client, group, "m-x", 0, topics=[topic], rebalance_timeout=-1
        ),
        "join_without_subscription": lambda: _heartbeat(client, group, "m-x", 0),
        "unknown_assignor": lambda: _heartbeat(
            client, group, "m-x", 0, topics=[topic], assignor="nope"
        ),
    }
    for name, call in cases.items():
        response = call()
        ctx.record(f"heartbeat.{name}", {"error": err(response.error_code)})
    ctx.record("describe.unknown", _describe(client, ["cg848-nowhere"]))
    classic = wire.join_group(client, group, version=9)
    ctx.record("classic_join", err(classic.error_code))
    for name, epoch in (("stale", 0), ("current", joined.member_epoch)):
        commit = wire.offset_commit(
            client, group, {(topic, 0): 1}, generation=epoch, member_id="m-e", version=9
        )
        ctx.record(f"commit.{name}", err(commit.topics[0].partitions[0].error_code))
    for name, member_id, epoch in (
        ("stale", "m-e", 0),
        ("current", "m-e", joined.member_epoch),
        ("unknown_member", "m-ghost", joined.member_epoch),
        ("admin", None, -1),
    ):
        fetched = client.request(
            9,
            9,
            groups=[
                {
                    "group_id": group,
                    "member_id": member_id,
                    "member_epoch": epoch,
                    "topics": [{"name": topic, "partition_indexes": [0]}],
                }
            ],
            require_stable=False,
        )
        found = fetched.groups[0]
        offsets = [p.committed_offset for t in found.topics for p in t.partitions]
        ctx.record(f"fetch.{name}", {"error": err(found.error_code), "offsets": offsets})
    old = wire.offset_commit(
        client, group, {(topic, 0): 1}, generation=joined.member_epoch, member_id="m-e"
    )
    ctx.record("commit.v8", err(old.topics[0].partitions[0].error_code))
    admin = wire.offset_commit(client, group, {(topic, 0): 1}, version=9)
    ctx.record("commit.admin_while_member", err(admin.topics[0].partitions[0].error_code))
    _heartbeat(client, group, "m-e", -1)
    admin = wire.offset_commit(client, group, {(topic, 0): 2}, version=9)
    ctx.record("commit.admin_when_empty", err(admin.topics[0].partitions[0].error_code))
    listed = client.request(16, 5, states_filter=[], types_filter=["consumer"])
    ctx.record(
        "list_groups.consumer",
        sorted(
            (g.group_id, g.group_state, g.group_type, g.protocol_type)
            for g in listed.groups
            if g.group_id == group
        ),
    )


@scenario()
def static_members(ctx: Ctx) -> None:
    """A static member leaves with -2 and keeps its place; its instance id is refused to
    another member while it is held and taken over by a rejoin after the -2 leave, with
    the same partitions and no new group epoch; a member id that is not the instance's is
    fenced."""
    client = ctx.raw()
    topic, group = "cg848-static", "cg848-static-group"
    ctx.record("create", err(wire.create_topic(client, topic, 4).error_code))
    ctx.check(wire.wait_for_topic(client, topic, 4), "topic ready")
    wire.find_coordinator(client, group)
    first = wire.retry_coordinator(
        lambda: _heartbeat(client, group, "s-one", 0, topics=[topic], instance_id="inst-1")
    )
    ctx.record("one.join", _answer(first))
    ctx.check(first.error_code == 0, "joined")
    clash = _heartbeat(client, group, "s-two", 0, topics=[topic], instance_id="inst-1")
    ctx.record("taken_instance", {"error": err(clash.error_code)})
    impostor = _heartbeat(client, group, "s-two", first.member_epoch, instance_id="inst-1")
    ctx.record("other_member_id", {"error": err(impostor.error_code)})
    unknown = _heartbeat(client, group, "s-one", first.member_epoch, instance_id="inst-9")
    ctx.record("unknown_instance", {"error": err(unknown.error_code)})
    left = _heartbeat(client, group, "s-one", -2, instance_id="inst-1")
    ctx.record("static_leave", _answer(left))
    ctx.record("describe.after_leave", _describe(client, [group]))
    back = _heartbeat(client, group, "s-three", 0, topics=[topic], instance_id="inst-1")
    ctx.record("rejoin", _answer(back))
    ctx.record("describe.after_rejoin", _describe(client, [group]))
    _heartbeat(client, group, "s-three", -1, instance_id="inst-1")
