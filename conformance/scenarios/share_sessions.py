"""Share sessions (KIP-932's ShareFetch / ShareAcknowledge) and the member id they name.

Kafka 4.4's KafkaApis checks only the member id's shape (`isMemberIdValid`: present,
non-empty, at most 36 UTF-16 code units; else INVALID_REQUEST, top level) and its share
session cache keys sessions by (group, member id) without asking the group coordinator:
a member id that never joined, or one that left, opens a session and acquires records."""

from __future__ import annotations

import time
from typing import Any

from conformance import wire
from conformance.scenarios import Ctx, scenario
from tests.support.rawclient import RawClient
from tests.support.share_requests import acquired, share_fetch

SHARE_GROUP_HEARTBEAT, SHARE_ACKNOWLEDGE = 76, 79
GROUP, TOPIC = "share-members", "share-members"
# Kafka initializes a share partition's state at its first fetch, asynchronously:
# a fetch is repeated (waiting) until it acquires.
ACQUIRE_TRIES = 20
GROUP_RESOURCE = 32  # ConfigResource type GROUP (KIP-848)


def _fetch(
    client: RawClient,
    member: str | None,
    epoch: int,
    topics: list[dict[str, Any]] | None = None,
    group: str | None = GROUP,
    wait_ms: int = 0,
) -> Any:
    return share_fetch(client, group, member, epoch, topics or [], wait_ms)


def _ack(client: RawClient, member: str | None, epoch: int, group: str | None = GROUP) -> Any:
    return client.request(
        SHARE_ACKNOWLEDGE, 1, group_id=group, member_id=member, share_session_epoch=epoch, topics=[]
    )


def _top(response: Any) -> dict[str, Any]:
    """What a client sees of a top-level answer (the lock timeout is ShareFetch's)."""
    seen = {"error": wire.err(response.error_code), "message": response.error_message}
    lock = getattr(response, "acquisition_lock_timeout", None)
    if lock is not None:
        seen["lock_ms"] = int(lock.total_seconds() * 1000)
    # Partitions answered with an error (Kafka lists a partition it has nothing for, or
    # leaves it out, as its share partition's state is being initialized or not).
    seen["failed"] = sorted(
        wire.err(p.error_code) for t in response.responses for p in t.partitions if p.error_code
    )
    return seen


def _partition(topic_id: Any) -> list[dict[str, Any]]:
    return [
        {
            "topic_id": topic_id,
            "partitions": [{"partition_index": 0, "acknowledgement_batches": []}],
        }
    ]


@scenario()
def member_ids(ctx: Ctx) -> None:
    """Missing, empty, too long and never-joined member ids in ShareFetch and
    ShareAcknowledge, at a new session (epoch 0), an existing one and its close; and a
    member that left opening a session again."""
    client = ctx.raw()
    wire.create_topic(client, TOPIC, 1)
    ctx.check(wire.wait_for_topic(client, TOPIC, 1), "topic ready")
    topic_id = next(t.topic_id for t in wire.metadata(client, [TOPIC]).topics)
    wire.find_coordinator(client, GROUP)

    ctx.record("fetch, no member id", _top(_fetch(client, None, 0)))
    ctx.record("fetch, empty member id", _top(_fetch(client, "", 0)))
    ctx.record("fetch, empty member id, epoch 1", _top(_fetch(client, "", 1)))
    ctx.record("fetch, empty member id, close", _top(_fetch(client, "", -1)))
    ctx.record("fetch, 37 characters", _top(_fetch(client, "m" * 37, 0)))
    # 36 UTF-16 code units (18 characters past the Basic Multilingual Plane), then 38.
    ctx.record("fetch, 36 code units", _top(_fetch(client, "\U0001f600" * 18, 0)))
    ctx.record("fetch, 38 code units", _top(_fetch(client, "\U0001f600" * 19, 0)))
    ctx.record("fetch, no group id", _top(_fetch(client, "ghost", 0, group=None)))
    ctx.record("fetch, empty group id", _top(_fetch(client, "ghost", 0, group="")))
    ctx.record("fetch, empty group id, next", _top(_fetch(client, "ghost", 1, group="")))
    ctx.record("ack, empty group id, close", _top(_ack(client, "ghost", -1, group="")))
    ctx.record("ack, no member id", _top(_ack(client, None, 1)))
    ctx.record("ack, empty member id, epoch 0", _top(_ack(client, "", 0)))
    ctx.record("ack, 37 characters, close", _top(_ack(client, "m" * 37, -1)))
    ctx.record("ack, no group id", _top(_ack(client, "ghost", 1, group=None)))

    # A member id no heartbeat ever named: no session until it opens one, then a session
    # like any other's, acquiring records (once a member's subscription had the topic's
    # share partition initialized: before, Kafka gives a ShareFetch nothing from it).
    ghost = "never-joined-member-id-0123456789ab"  # 35 characters
    # From the log start: a share partition Kafka initializes after the records below
    # were written would start past them at `latest` (a race under load).
    earliest = [("share.auto.offset.reset", 0, "earliest")]
    altered = wire.incremental_alter_configs(client, GROUP, earliest, resource_type=GROUP_RESOURCE)
    ctx.record("group starts at earliest", wire.err(altered.error_code))
    ctx.record("ghost fetch at epoch 1", _top(_fetch(client, ghost, 1)))
    ctx.record("ghost close", _top(_fetch(client, ghost, -1)))
    ctx.record("ghost ack at epoch 1", _top(_ack(client, ghost, 1)))
    ctx.record("ghost ack close", _top(_ack(client, ghost, -1)))
    holder = _assigned(client)
    ctx.record("holder assigned", holder)
    opened = _fetch(client, ghost, 0, _partition(topic_id))
    ctx.record("ghost opens", _top(opened))
    wire.produce(client, TOPIC, wire.encode_batch([b"a", b"b"]))
    epoch, got = 1, []
    for _ in range(ACQUIRE_TRIES):
        fetched = _fetch(client, ghost, epoch, wait_ms=1_000)
        epoch += 1
        if fetched.error_code or (got := acquired(fetched)):
            break
    ctx.record("ghost acquires", (wire.err(fetched.error_code), got))
    ctx.record("ghost's session goes on", _top(_ack(client, ghost, epoch)))
    ctx.record("ghost closes", _top(_ack(client, ghost, -1)))
    ctx.record("closed", _top(_fetch(client, ghost, epoch + 1)))

    # The member that joined leaves, then opens a share session as before.
    ctx.record("holder leaves", wire.err(_beat(client, "holder", -1).error_code))
    ctx.record("leaver opens", _top(_fetch(client, "holder", 0, _partition(topic_id))))
    ctx.record("leaver's next", _top(_fetch(client, "holder", 1)))
    ctx.record("leaver closes", _top(_fetch(client, "holder", -1)))


def _beat(client: RawClient, member: str, epoch: int, topics: list[str] | None = None) -> Any:
    return client.request(
        SHARE_GROUP_HEARTBEAT,
        1,
        group_id=GROUP,
        member_id=member,
        member_epoch=epoch,
        rack_id=None,
        subscribed_topic_names=topics,
    )


def _assigned(client: RawClient) -> tuple[str, int]:
    """Member "holder" joins, subscribing to the topic, and heartbeats until it is dealt
    the partition (its share partition is initialized then)."""
    joined = wire.retry_coordinator(lambda: _beat(client, "holder", 0, [TOPIC]), 30)
    beat, epoch = joined, joined.member_epoch
    for _ in range(ACQUIRE_TRIES * 5):
        if beat.error_code or (beat.assignment is not None and beat.assignment.topic_partitions):
            break
        time.sleep(0.2)
        beat = _beat(client, "holder", epoch)
        epoch = beat.member_epoch
    return wire.err(beat.error_code), epoch
