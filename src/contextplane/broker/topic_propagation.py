"""A topic change answered once the cluster's brokers show it (RFC 0004 §2).

Brokers read a topic created, grown or deleted through another broker on that broker's
notification, milliseconds later; a client that bootstraps elsewhere right after the
answer could be told the old partition count (librdkafka's `0112_assign_unknown_part`
fails its record "Unknown partition"). So, as Kafka's ZooKeeper-mode controller held a
CreateTopics answer in its purgatory until the metadata reached the brokers, the broker
that made the change answers once every live broker, this one included, answers
Metadata with it: each changed topic with its new partition count and every partition
led (Kafka's new partitions have leaders when created), or a deleted topic unknown. A
peer answers a broker's Metadata from its own view, without the store lookup a client's
unknown name triggers (`handlers/cluster.py`): what is waited for is the change reaching
it by its notification, the path that serves every later request.
At most `TOPIC_CHANGE_WAITS_MAX` changes wait at once on a broker (past it one is
answered at once: the waits poll every peer). The wait is bounded
(`TOPIC_CHANGE_WAIT_S`): a broker that cannot be asked (refused, timed out, no
inter-broker listener) or may not describe the topic is not waited for,
and past the bound the answer goes as it is; the change itself is committed either way.
Once a broker cannot be asked, the partitions are no longer waited for to be led, only
listed: those placed on a broker killed while its lease lasts get no leader until it
lapses (the controller moves them then), so waiting for them would only spend the bound.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import uuid
from collections.abc import Mapping
from typing import Any

from contextplane import limits
from contextplane.broker.context import RequestContext
from contextplane.protocol.error_codes import ErrorCode

log = logging.getLogger(__name__)

METADATA_KEY, METADATA_VERSION = 3, 12
DELETED = 0  # the expected partition count of a deleted topic


async def until_shown(ctx: RequestContext, expected: Mapping[str, int]) -> None:
    """Wait (bounded) until every live broker shows `expected` (topic -> its partition
    count now, DELETED for a deleted topic); nothing on a broker alone."""
    cluster = ctx.cluster
    peers = cluster.peers
    others = set(cluster.registry.reachable_ids) - {cluster.node_id}
    if not expected or peers is None or not others:
        return
    if cluster.topic_change_waits >= limits.TOPIC_CHANGE_WAITS_MAX:
        waits = cluster.topic_change_waits
        log.info("topic change %s answered at once: %d waits already", sorted(expected), waits)
        return
    cluster.topic_change_waits += 1
    try:
        await _wait(ctx, expected, others)
    finally:
        cluster.topic_change_waits -= 1


async def _wait(ctx: RequestContext, expected: Mapping[str, int], others: set[int]) -> None:
    cluster = ctx.cluster
    clock = ctx.services.clock
    deadline_ms = clock.monotonic_ms() + limits.TOPIC_CHANGE_WAIT_S * 1000
    pause_s = limits.TOPIC_CHANGE_POLL_FIRST_S
    waiting = set(others)
    local = False
    led = True  # whether every partition must be led, not only listed
    while True:
        local = local or _shown_here(ctx, expected, led)
        left_s = (deadline_ms - clock.monotonic_ms()) / 1000
        if waiting:
            asked = sorted(waiting)
            answers = await asyncio.gather(
                *(_shown_by(ctx, node, expected, left_s, led) for node in asked)
            )
            if Answer.UNREACHABLE in answers and led:
                led = False
                local = local or _shown_here(ctx, expected, led)
            waiting = {
                node
                for node, answer in zip(asked, answers, strict=True)
                if answer is Answer.NOT_YET
            }
        if local and not waiting:
            return
        left_s = (deadline_ms - clock.monotonic_ms()) / 1000
        if left_s <= 0:
            log.info(
                "topic change %s not yet shown by %s after %.1f s; answered",
                sorted(expected),
                sorted(waiting) + ([] if local else [cluster.node_id]),
                limits.TOPIC_CHANGE_WAIT_S,
            )
            return
        await asyncio.sleep(min(pause_s, left_s))
        pause_s = min(pause_s * 2, limits.TOPIC_CHANGE_POLL_MAX_S)


class Answer(enum.Enum):
    """What a peer's Metadata says of the change."""

    SHOWN = "shown"  # or the peer may not see the topics: nothing to wait for
    NOT_YET = "not yet"
    UNREACHABLE = "unreachable"  # not asked: not waited for


def _shown_here(ctx: RequestContext, expected: Mapping[str, int], led: bool) -> bool:
    topics = ctx.topics.topics()
    leaders = ctx.cluster.leaders
    for name, count in expected.items():
        record = topics.get(name)
        if count == DELETED:
            if record is not None:
                return False
            continue
        if record is None or record.partitions != count:
            return False
        if led and any(leaders.listed(name, index)[0] == -1 for index in range(count)):
            return False
    return True


async def _shown_by(
    ctx: RequestContext, node: int, expected: Mapping[str, int], left_s: float, led: bool
) -> Answer:
    """Whether broker `node` answers Metadata with the change."""
    peers = ctx.cluster.peers
    assert peers is not None
    try:
        async with asyncio.timeout(max(left_s, 0.001)):
            answer = await peers.request(
                node,
                METADATA_KEY,
                METADATA_VERSION,
                topics=[{"name": name, "topic_id": uuid.UUID(int=0)} for name in expected],
                allow_auto_topic_creation=False,
                include_topic_authorized_operations=False,
            )
    except (OSError, TimeoutError) as exc:
        log.debug("asking node %d for the topic change: %r", node, exc)
        return Answer.UNREACHABLE
    if all(_topic_shown(topic, expected, led) for topic in answer.topics):
        return Answer.SHOWN
    return Answer.NOT_YET


def _topic_shown(topic: Any, expected: Mapping[str, int], led: bool) -> bool:
    count = expected.get(topic.name)
    if count is None or topic.error_code == ErrorCode.topic_authorization_failed:
        return True
    if count == DELETED:
        return topic.error_code == ErrorCode.unknown_topic_or_partition
    return (
        topic.error_code == ErrorCode.none
        and len(topic.partitions) == count
        and (not led or all(p.error_code == ErrorCode.none for p in topic.partitions))
    )
