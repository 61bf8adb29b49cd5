"""ZoneProduce (contextplane's own inter-broker API, protocol/zone_produce.py): the leader's
side of a zone write (RFC 0004 §7, "Writes, a smaller first cut").

A broker in a client's zone stored the client's Produce request frames in one object of
the shared store and names them here; this broker reads them from the store (in region:
no record byte crosses zones) and handles each through the ordinary pipeline as the
client's own request (its principal and address as the proxy saw them, its client id
from the frame), in the order given, so offsets, idempotence, transaction verification,
authorization, quotas, validation and audit are exactly a Produce's. Each frame's
Produce response body goes back in order.

Only a live peer broker is heard (`from_live_peer`: its client id and CLUSTER_ACTION on
the cluster; with no authorizer, another live registered broker's id): the call names a
principal, which nobody else may claim: the object must be one of the caller's own
rounds (`zone-router/<its node>/...`, so no call reads the store's data or another
broker's requests), and a round's key ends in 128 random bits only its writer and the
leaders it names the object to ever see, so a client passing as a broker (possible where
CLUSTER_ACTION is everyone's: no authorizer, or `allow.everyone.if.no.acl.found`) cannot
name an object holding frames as some principal's, not even its own frames the proxy
stored. Bounded: ZONE_PRODUCE_FRAMES_MAX frames,
ZONE_PRODUCE_BYTES_MAX object bytes read, each frame at most `socket.request.max.bytes`,
the store read within the call's timeout.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
from typing import Any

from kio.serial import entity_reader

from contextplane import limits
from contextplane.broker import authorization_ops as authz
from contextplane.broker.context import ConnectionInfo, Reply, RequestContext, later
from contextplane.broker.pipeline import Route
from contextplane.broker.zones import UNKNOWN, ZoneCell
from contextplane.cluster.forwarder import broker_node, from_live_peer
from contextplane.errors import KafkaError, ProtocolError
from contextplane.protocol.codec import (
    ZONE_PRODUCE_KEY,
    Request,
    UnsupportedVersion,
    decode_request,
    encode_response,
    response_schema,
)
from contextplane.protocol.error_codes import ErrorCode
from contextplane.protocol.produce_request import PRODUCE_KEY
from contextplane.security.principal import Principal
from contextplane.storage.orphan_sweep import ZONE_ROUTER_PREFIX

log = logging.getLogger(__name__)

# A round's object: `zone-router/<node>/<incarnation>/<sequence>-<secret>` (zone_router.py).
_ROUND_KEY = re.compile(
    re.escape(ZONE_ROUTER_PREFIX) + r"([0-9]{1,10})/[0-9]{1,20}/[0-9]{1,20}-[0-9a-f]{32}"
)
# The smallest request frame: api key, version, correlation id, client id length.
_FRAME_MIN = 10
# A frame's answer when its Produce asked for the connection to be closed (an acks=0
# produce that was refused): the proxy closes its client's connection, as Kafka does.
CLOSE_CONNECTION = ErrorCode.network_exception


async def zone_produce(ctx: RequestContext, request: Any) -> Reply:
    dispatch = ctx.services.dispatch
    if not from_live_peer(ctx) or dispatch is None:
        return _refused(ctx, ErrorCode.cluster_authorization_failed, "only a live peer broker")
    if not _own_object(ctx, request.object_key):
        # Not the store's data, nor another broker's rounds, nor a path out of the store.
        return _refused(ctx, ErrorCode.invalid_request, "not one of the caller's round objects")
    try:
        spans = _spans(request, ctx.settings.socket_request_max_bytes)
        principals = [_principal(frame.principal) for frame in request.frames]
        async with asyncio.timeout(max(request.timeout.total_seconds(), 0.001)):
            read = await asyncio.gather(
                *(ctx.log.objects.get_range(request.object_key, s, e) for s, e in spans)
            )
    except KafkaError as exc:
        return _refused(ctx, exc.code, exc.message)
    except TimeoutError:
        return _refused(ctx, ErrorCode.request_timed_out, "the object was not read in time")
    except OSError as exc:
        # The store's error names its location (a file:// directory): logged, not answered.
        log.warning("zone produce object %s not read: %s", request.object_key, exc)
        return _refused(ctx, ErrorCode.kafka_storage_error, "the object was not read")
    connections: dict[tuple[Principal, str], ConnectionInfo] = {}
    answers: list[tuple[int, Reply | KafkaError]] = []
    for frame, principal in zip(request.frames, principals, strict=True):
        # In order: a producer's batches append as it sent them.
        version = -1
        client = (principal, frame.client_address)
        connection = connections.get(client)
        if connection is None:
            connection = connections[client] = ConnectionInfo(
                frame.client_address,
                listener=ctx.connection.listener,
                security_protocol=ctx.connection.security_protocol,
                principal=principal,
                # Read from the store, not sent by a client here: counted in no zone.
                zone=ZoneCell(ctx.settings.broker_rack or UNKNOWN),
            )
        try:
            produce = _produce_request(_frame(spans, read, frame.position, frame.size))
            version = produce.header.api_version
            answers.append((version, await dispatch(produce, connection)))
        except KafkaError as exc:
            answers.append((version, exc))
        except ProtocolError as exc:
            answers.append((version, KafkaError(CLOSE_CONNECTION, str(exc))))

    async def respond() -> Any:
        frames = [await _answer(version, answer) for version, answer in answers]
        _fit(frames, [version for version, _ in answers])
        return ctx.response(throttle_time=0, error_code=ErrorCode.none, frames=frames)

    return later(respond())


def _own_object(ctx: RequestContext, key: str) -> bool:
    """Whether `key` names one of the calling broker's round objects (zone_router.py)."""
    node = broker_node(ctx.header.client_id)
    found = _ROUND_KEY.fullmatch(key)
    return found is not None and node is not None and int(found.group(1)) == node


def _spans(request: Any, frame_max: int) -> list[tuple[int, int]]:
    """The object's byte ranges to read: adjacent frames as one GET."""
    frames = request.frames
    if len(frames) > limits.ZONE_PRODUCE_FRAMES_MAX:
        raise KafkaError(
            ErrorCode.invalid_request,
            f"{len(frames)} frames; at most {limits.ZONE_PRODUCE_FRAMES_MAX} in one call",
        )
    total = 0
    spans: list[tuple[int, int]] = []
    for frame in sorted(frames, key=lambda f: f.position):
        if frame.position < 0 or not _FRAME_MIN <= frame.size <= frame_max:
            raise KafkaError(
                ErrorCode.invalid_request,
                f"a frame of {frame.size} bytes at {frame.position}",
            )
        total += frame.size
        start, end = frame.position, frame.position + frame.size
        if spans and start <= spans[-1][1]:
            spans[-1] = (spans[-1][0], max(spans[-1][1], end))
        else:
            spans.append((start, end))
    if total > limits.ZONE_PRODUCE_BYTES_MAX:
        raise KafkaError(
            ErrorCode.invalid_request,
            f"{total} frame bytes; at most {limits.ZONE_PRODUCE_BYTES_MAX} in one call",
        )
    return spans


def _frame(spans: list[tuple[int, int]], read: list[memoryview], position: int, size: int) -> bytes:
    for (start, end), data in zip(spans, read, strict=True):
        if start <= position and position + size <= end:
            return bytes(data[position - start : position - start + size])
    raise KafkaError(ErrorCode.invalid_request, f"no frame at {position}")  # unreachable


def _principal(text: str) -> Principal:
    kind, colon, name = text.partition(":")
    if not colon or not kind or not name:
        raise KafkaError(ErrorCode.invalid_request, f"not a principal: {text[:100]!r}")
    return Principal(kind, name)


def _produce_request(data: bytes) -> Request:
    try:
        request = decode_request(data)
    except UnsupportedVersion as exc:
        raise KafkaError(ErrorCode.unsupported_version, "the frame's version is unknown") from exc
    except ProtocolError as exc:
        raise KafkaError(ErrorCode.invalid_request, f"the frame is unreadable: {exc}") from exc
    if not isinstance(request, Request) or request.header.api_key != PRODUCE_KEY:
        raise KafkaError(ErrorCode.invalid_request, "the frame is not a Produce request")
    return request


async def _answer(version: int, answer: Reply | KafkaError) -> dict[str, Any]:
    """A frame's entry: its Produce response body, or why it was not handled."""
    if isinstance(answer, KafkaError):
        return {"error_code": answer.code, "error_message": answer.message, "body": None}
    if answer.silent:
        return {"error_code": ErrorCode.none, "error_message": None, "body": None}
    body = answer.body if answer.later is None else await answer.later
    encoded = response_body(version, body)
    return {"error_code": ErrorCode.none, "error_message": None, "body": encoded}


def _fit(frames: list[dict[str, Any]], versions: list[int]) -> None:
    """Keep the answer within what the proxy reads (ZONE_PRODUCE_ANSWER_BYTES): a
    Produce can draw an answer far larger than its request (a record error per record,
    each message naming the topic), so past the bound the largest answers lose their
    messages, keeping every code, offset and record index (a message may be null in
    Kafka's answer too)."""
    total = sum(len(frame["body"] or b"") for frame in frames)
    if total <= limits.ZONE_PRODUCE_ANSWER_BYTES:
        return
    by_size = sorted(range(len(frames)), key=lambda i: -len(frames[i]["body"] or b""))
    for index in by_size:
        body = frames[index]["body"]
        if total <= limits.ZONE_PRODUCE_ANSWER_BYTES or body is None:
            return
        version = versions[index]
        terse = response_body(version, _without_messages(produce_entity(version, body)))
        total -= len(body) - len(terse)
        frames[index]["body"] = terse


def _without_messages(body: Any) -> Any:
    def partition(answer: Any) -> Any:
        changes: dict[str, Any] = {}
        if hasattr(answer, "error_message"):
            changes["error_message"] = None
        if getattr(answer, "record_errors", None):
            changes["record_errors"] = tuple(
                dataclasses.replace(error, batch_index_error_message=None)
                for error in answer.record_errors
            )
        return dataclasses.replace(answer, **changes)

    return dataclasses.replace(
        body,
        responses=tuple(
            dataclasses.replace(
                topic, partition_responses=tuple(map(partition, topic.partition_responses))
            )
            for topic in body.responses
        ),
    )


def produce_entity(version: int, body: bytes) -> Any:
    """A Produce response body (as `response_body` gives it) read back into its entity."""
    entity, _ = entity_reader(response_schema(PRODUCE_KEY, version))(body, 0)
    return entity


def response_body(version: int, body: Any) -> bytes:
    """A Produce response body without its frame's size prefix and header: a hand-encoded
    one arrives as whole frame parts, an entity is encoded here."""
    if isinstance(body, list):
        frame = b"".join(bytes(part) for part in body)
    else:
        frame = encode_response(PRODUCE_KEY, version, 0, body)
    # The size prefix, the correlation id and (flexible versions) the header's tags.
    return frame[8 + (1 if response_schema(PRODUCE_KEY, version).__flexible__ else 0) :]


def _refused(ctx: RequestContext, code: ErrorCode, message: str) -> Reply:
    return ctx.reply(throttle_time=0, error_code=code, error_message=message, frames=[])


# Served, not advertised in ApiVersions (protocol/zone_produce.py).
ROUTE = Route(
    ZONE_PRODUCE_KEY,
    0,
    0,
    zone_produce,
    authz.zone_produce,
    authz.refuse_zone_produce,
    advertised=False,
)
