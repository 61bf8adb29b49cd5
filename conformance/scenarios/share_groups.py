"""Share groups (KIP-932) membership with raw ShareGroupHeartbeat / ShareGroupDescribe,
no assignment interval on either broker: the member epochs and assignments each heartbeat
returns while share partitions are initialized (Kafka 4.4 initializes them after the
heartbeat that subscribes to them, asynchronously; contextplane at once, answering Kafka's
epochs), for a join, a second member, a leave, a new subscription and a new partition.

Kafka's initialization takes a moment: a member heartbeats until its epoch moves, and
only the answers whose epoch moved are recorded (the ones in between repeat the last)."""

from __future__ import annotations

import time
from typing import Any

from conformance import wire
from conformance.scenarios import Ctx, scenario
from tests.support.rawclient import RawClient

SHARE_GROUP_HEARTBEAT, SHARE_GROUP_DESCRIBE = 76, 77
NO_INTERVAL = {"group.share.assignment.interval.ms": "0"}
TWO, OTHER = "share-epochs-two", "share-epochs-other"
# Liveness bound for Kafka's asynchronous initialization, far above its pace.
SETTLE_S = 20.0


def _beat(client: RawClient, group: str, member: str, epoch: int, topics: Any = None) -> Any:
    return client.request(
        SHARE_GROUP_HEARTBEAT,
        1,
        group_id=group,
        member_id=member,
        member_epoch=epoch,
        rack_id=None,
        subscribed_topic_names=topics,
    )


class _Names:
    def __init__(self, client: RawClient) -> None:
        self.client = client
        self.names: dict[Any, str] = {}

    def of(self, topic_partitions: Any) -> list[str]:
        if any(t.topic_id not in self.names for t in topic_partitions):
            self.names = {t.topic_id: t.name for t in wire.metadata(self.client, None).topics}
        return sorted(
            f"{self.names.get(t.topic_id, '?')}-{p}" for t in topic_partitions for p in t.partitions
        )


def _answer(names: _Names, response: Any, exact: bool = True) -> dict[str, Any]:
    """`exact=False` with two members on one topic: how many partitions, not which (Kafka's
    simple assignor picks which member gets which partition by its own order)."""
    sent = response.assignment
    parts = None if sent is None else names.of(sent.topic_partitions)
    return {
        "error": wire.err(response.error_code),
        "epoch": response.member_epoch,
        "assignment": parts if exact or parts is None else len(parts),
    }


def _until_moved(
    names: _Names, client: RawClient, group: str, member: str, epoch: int
) -> list[Any]:
    """Heartbeats until one is sent partitions (or fails): each answer whose epoch moved."""
    moved: list[Any] = []
    deadline = time.monotonic() + SETTLE_S
    while time.monotonic() < deadline:
        beat = _beat(client, group, member, epoch)
        if beat.error_code or beat.member_epoch != epoch:
            moved.append(_answer(names, beat))
            epoch = beat.member_epoch
        if beat.error_code or (beat.assignment is not None and beat.assignment.topic_partitions):
            break
        time.sleep(0.2)
    return moved


def _described(names: _Names, client: RawClient, group: str, exact: bool = True) -> dict[str, Any]:
    response = client.request(
        SHARE_GROUP_DESCRIBE, 1, group_ids=[group], include_authorized_operations=False
    )
    described = response.groups[0]
    return {
        "error": wire.err(described.error_code),
        "state": described.group_state,
        "epochs": (described.group_epoch, described.assignment_epoch),
        "members": sorted(
            (m.member_id, m.member_epoch, parts if exact else len(parts))
            for m in described.members
            for parts in [names.of(m.assignment.topic_partitions)]
        ),
    }


@scenario(settings=NO_INTERVAL)  # ~4 s against Kafka: in the CI subset
def epochs_while_partitions_initialize(ctx: Ctx) -> None:
    """Join (epoch 2, nothing yet), the next heartbeat (3, the partitions), a second
    member, its leave, a new subscription and a new partition, and the last leave."""
    client = ctx.raw()
    names = _Names(client)
    group = "share-epochs"
    wire.create_topic(client, TWO, 2)
    wire.create_topic(client, OTHER, 1)
    ctx.check(wire.wait_for_topic(client, TWO, 2), "topic ready")
    ctx.check(wire.wait_for_topic(client, OTHER, 1), "topic ready")
    # Kafka creates its share-state topic at a group's first initialization: a group
    # before the one observed makes it, so the observed one's waits are the usual.
    wire.find_coordinator(client, "share-epochs-warm")
    warming = wire.retry_coordinator(
        lambda: _beat(client, "share-epochs-warm", "w", 0, [OTHER]), 30
    )
    warm = _until_moved(names, client, "share-epochs-warm", "w", warming.member_epoch)
    ctx.record("warm", warm)
    _beat(client, "share-epochs-warm", "w", -1)
    wire.find_coordinator(client, group)

    joined = wire.retry_coordinator(lambda: _beat(client, group, "a", 0, [TWO]))
    ctx.record("a joins", _answer(names, joined))
    ctx.record("described after the join", _described(names, client, group))
    ctx.record("a initialized", _until_moved(names, client, group, "a", joined.member_epoch))
    ctx.record("described", _described(names, client, group))
    a = _described(names, client, group)["members"][0][1]
    ctx.record("a steady", _answer(names, _beat(client, group, "a", a)))

    b = _beat(client, group, "b", 0, [TWO])
    ctx.record("b joins", _answer(names, b, exact=False))
    ctx.record("described after b joins", _described(names, client, group, exact=False))
    beat = _beat(client, group, "a", a)
    a = beat.member_epoch
    ctx.record("a after b joins", _answer(names, beat, exact=False))
    ctx.record("b leaves", _answer(names, _beat(client, group, "b", -1)))
    ctx.record("described after b leaves", _described(names, client, group, exact=False))
    beat = _beat(client, group, "a", a)
    a = beat.member_epoch
    ctx.record("a after b leaves", _answer(names, beat))

    beat = _beat(client, group, "a", a, [TWO, OTHER])
    a = beat.member_epoch
    ctx.record("a subscribes to another", _answer(names, beat))
    moved = _until_moved(names, client, group, "a", a)
    ctx.record("a initialized again", moved)
    a = moved[-1]["epoch"] if moved else a
    ctx.record("a names its topics", _answer(names, _beat(client, group, "a", a, [TWO, OTHER])))

    ctx.record("partitions added", wire.err(wire.create_partitions(client, TWO, 3).error_code))
    ctx.check(wire.wait_for_topic(client, TWO, 3), "partition listed")
    ctx.record("a sees the new partition", _until_moved(names, client, group, "a", a))
    ctx.record("a leaves", _answer(names, _beat(client, group, "a", -1)))
    ctx.record("described after the last leave", _described(names, client, group))


ALTER_SHARE_GROUP_OFFSETS = 91


@scenario(quick=False, settings=NO_INTERVAL)
def epochs_after_altered_offsets(ctx: Ctx) -> None:
    """AlterShareGroupOffsets writes (so initializes) the share partitions it names: a
    member joining afterwards is dealt those at its join, the others (here the topic's
    second partition) one epoch later."""
    client = ctx.raw()
    names = _Names(client)
    group, topic = "share-epochs-altered", "share-epochs-altered"
    wire.create_topic(client, topic, 2)
    ctx.check(wire.wait_for_topic(client, topic, 2), "topic ready")
    wire.find_coordinator(client, group)

    def alter() -> Any:
        return client.request(
            ALTER_SHARE_GROUP_OFFSETS,
            0,
            group_id=group,
            topics=[
                {"topic_name": topic, "partitions": [{"partition_index": 0, "start_offset": 0}]}
            ],
        )

    altered = wire.retry_coordinator(alter, 30)
    ctx.record(
        "altered",
        (
            wire.err(altered.error_code),
            [wire.err(p.error_code) for t in altered.responses for p in t.partitions],
        ),
    )
    ctx.record("described", _described(names, client, group))
    joined = _beat(client, group, "a", 0, [topic])
    ctx.record("a joins", _answer(names, joined))
    ctx.record("a initialized", _until_moved(names, client, group, "a", joined.member_epoch))
    ctx.record("described after", _described(names, client, group))
