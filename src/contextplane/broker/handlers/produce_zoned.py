"""A Produce for partitions led in another zone, taken by this broker for a client of its
own zone (RFC 0004 §7, "Writes, a smaller first cut", `zone.produce.proxy.enable`).

The request is split by leader: the partitions led here (or whose leader is in this zone,
or unknown) go through the ordinary handler; each other zone's leader gets a copy of the
request holding only its partitions, as a frame the zone router (cluster/zone_router.py)
stores in the shared store and names to that leader (ZoneProduce). The answers are
merged into one response, in the request's topic order. A leader's NOT_LEADER hint
(KIP-951's current leader and endpoints) is left out: the client asks this broker's
Metadata again, which names the broker of its own zone to write through.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import struct
from collections.abc import Awaitable, Callable
from typing import Any

from kio.serial import entity_writer

from contextplane import limits
from contextplane.broker.context import NO_RESPONSE, Reply, RequestContext, later
from contextplane.broker.handlers.zone_produce import produce_entity, response_body
from contextplane.broker.internal_topics import is_internal
from contextplane.broker.replica_selector import connection_zone
from contextplane.broker.zone_proxy import led_in_other_zones
from contextplane.cluster.zone_router import FrameAnswer
from contextplane.protocol.build import build
from contextplane.protocol.codec import request_schema, response_schema
from contextplane.protocol.error_codes import ErrorCode
from contextplane.protocol.produce_request import PRODUCE_KEY
from contextplane.protocol.produce_response import TOPIC_IDS_FROM

# (leader node -> [(topic entry, its partition entries)]) of a request's other-zone part.
Routed = dict[int, list[tuple[Any, list[Any]]]]
Handler = Callable[[RequestContext, Any], Awaitable[Reply]]


def routed(ctx: RequestContext, request: Any) -> Routed | None:
    """The partitions of `request` to hand to leaders of other zones, by leader; None
    when there are none (the ordinary handler takes the whole request). A transactional
    Produce is handed on too: each leader verifies its partitions with the transaction
    coordinator as for any Produce."""
    if ctx.services.zone_router is None:
        return None
    named = [
        (topic, name)
        for topic, name in ctx.topics.names_of(request.topic_data, ctx.api_version >= 13)
        if name is not None and not is_internal(name)
    ]
    leaders = led_in_other_zones(
        ctx, ((name, d.index) for topic, name in named for d in topic.partition_data)
    )
    if not leaders:
        return None
    found: Routed = {}
    for topic, name in named:
        for data in topic.partition_data:
            leader = leaders.get((name, data.index))
            if leader is None:
                continue
            entries = found.setdefault(leader, [])
            if entries and entries[-1][0] is topic:
                entries[-1][1].append(data)
            else:
                entries.append((topic, [data]))
    return found


async def produce(ctx: RequestContext, request: Any, remote: Routed, here: Handler) -> Reply:
    router = ctx.services.zone_router
    assert router is not None
    handed = {id(d) for entries in remote.values() for _, parts in entries for d in parts}
    local_topics = []
    for topic in request.topic_data:
        kept = tuple(d for d in topic.partition_data if id(d) not in handed)
        if kept:
            local_topics.append(dataclasses.replace(topic, partition_data=kept))
    frames = {
        leader: _frame(
            ctx,
            dataclasses.replace(
                request,
                topic_data=tuple(
                    dataclasses.replace(topic, partition_data=tuple(parts))
                    for topic, parts in entries
                ),
            ),
        )
        for leader, entries in remote.items()
    }
    # The handed records crossed the wire from the client too (the leader, reading them
    # from the store, counts them as no client's), and count against the client's
    # producer_byte_rate here, where its connection is muted (the leader's throttle is
    # of its own connection to this broker); acks=0 ones included.
    handed_bytes = sum(
        len(d.records or b"") for entries in remote.values() for _, parts in entries for d in parts
    )
    connection_zone(ctx, None).bytes_in += handed_bytes
    ctx.throttle(
        ctx.services.quotas.produce_throttle_ms(ctx.principal, ctx.header.client_id, handed_bytes)
    )
    # Queued before this connection's next request is read: the queue's bound holds
    # back a client that sends faster than rounds go (acks=0 ones too).
    answers = asyncio.ensure_future(
        await router.hand_over(frames, str(ctx.principal), ctx.connection.peer, _wait_s(request))
    )
    local = None
    if local_topics:
        local = await here(ctx, dataclasses.replace(request, topic_data=tuple(local_topics)))
    if request.acks == 0:
        return NO_RESPONSE  # the hand-over goes on; nothing is owed to the client
    # What the answer needs of the request while the leaders take their time: its topics
    # and partition indexes, not the records (the frames are in the round's object).
    request, remote = _topics_only(request), _indexes_only(remote)

    async def respond() -> Any:
        bodies = []
        if local is not None and not local.silent:
            body = local.body if local.later is None else await local.later
            bodies.append(produce_entity(ctx.api_version, response_body(ctx.api_version, body)))
        for leader, answer in (await answers).items():
            bodies.append(_answered(ctx.api_version, remote[leader], answer))
        return _merged(ctx, request, bodies)

    return later(respond())


def _topics_only(request: Any) -> Any:
    """`request` with its topics only (what `_merged` orders the answer by)."""
    topics = tuple(dataclasses.replace(t, partition_data=()) for t in request.topic_data)
    return dataclasses.replace(request, topic_data=topics)


def _indexes_only(remote: Routed) -> Routed:
    """`remote` without the records (`_answered` needs each topic and partition index)."""
    return {
        leader: [
            (
                dataclasses.replace(topic, partition_data=()),
                [dataclasses.replace(d, records=None) for d in parts],
            )
            for topic, parts in entries
        ]
        for leader, entries in remote.items()
    }


def _wait_s(request: Any) -> float:
    """How long the hand-over may take. A Produce's timeout is how long Kafka waits for
    the in-sync replicas (acks=all); with acks=1 Kafka answers once appended and ignores
    it, so a short one must not answer REQUEST_TIMED_OUT for records the leader appended
    (a plain producer's retry would write them twice): the peer timeout bounds those."""
    timeout_s = request.timeout.total_seconds()
    if request.acks == -1:
        return timeout_s
    return max(timeout_s, limits.PEER_REQUEST_TIMEOUT_S)


def _frame(ctx: RequestContext, request: Any) -> bytes:
    """`request` as the client would have sent it: its header's version and client id."""
    version = ctx.api_version
    schema = request_schema(PRODUCE_KEY, version)
    client_id = (ctx.header.client_id or "").encode()
    buffer = io.BytesIO()
    buffer.write(struct.pack(">hhih", PRODUCE_KEY, version, 0, len(client_id)))
    buffer.write(client_id)
    if schema.__flexible__:
        buffer.write(b"\0")
    entity_writer(schema)(buffer, request)
    return buffer.getvalue()


def _answered(version: int, entries: list[tuple[Any, list[Any]]], answer: FrameAnswer) -> Any:
    """A leader's Produce response, or one answering each of its partitions the error."""
    if answer.error_code == ErrorCode.none and answer.body is not None:
        return produce_entity(version, answer.body)
    code = answer.error_code or ErrorCode.unknown_server_error
    message = answer.error_message
    schema = response_schema(PRODUCE_KEY, version)
    by_id = version >= TOPIC_IDS_FROM
    return build(
        schema,
        {
            "responses": [
                {
                    **({"topic_id": topic.topic_id} if by_id else {"name": topic.name}),
                    "partition_responses": [
                        {"index": d.index, "error_code": code, "error_message": message}
                        for d in parts
                    ],
                }
                for topic, parts in entries
            ],
            "throttle_time": 0,
        },
    )


def _merged(ctx: RequestContext, request: Any, bodies: list[Any]) -> Any:
    """One response of every body's topics, in the request's topic order, with the
    longest throttle; NOT_LEADER hints dropped."""
    by_topic: dict[Any, list[Any]] = {}
    throttle = ctx.throttle_ms  # this broker's own quota's, for the handed records too
    for body in bodies:
        throttle = max(throttle, int(body.throttle_time.total_seconds() * 1000))
        for topic in body.responses:
            key = getattr(topic, "topic_id", None) if ctx.api_version >= 13 else topic.name
            by_topic.setdefault(key, []).extend(_without_hint(p) for p in topic.partition_responses)
    responses = []
    seen: set[Any] = set()
    for topic in request.topic_data:
        key = topic.topic_id if ctx.api_version >= 13 else topic.name
        if key in seen or key not in by_topic:
            continue
        seen.add(key)
        first = next(t for b in bodies for t in b.responses if _key(ctx, t) == key)
        responses.append(dataclasses.replace(first, partition_responses=tuple(by_topic[key])))
    template = bodies[0]
    kwargs: dict[str, Any] = {"responses": tuple(responses)}
    if hasattr(template, "node_endpoints"):
        kwargs["node_endpoints"] = ()
    return dataclasses.replace(
        template, throttle_time=type(template.throttle_time)(milliseconds=throttle), **kwargs
    )


def _key(ctx: RequestContext, topic: Any) -> Any:
    return getattr(topic, "topic_id", None) if ctx.api_version >= 13 else topic.name


def _without_hint(partition: Any) -> Any:
    if getattr(partition, "current_leader", None) is None:
        return partition
    default = type(partition.current_leader)()
    return dataclasses.replace(partition, current_leader=default)
