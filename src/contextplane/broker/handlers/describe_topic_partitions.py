"""DescribeTopicPartitions (API 75, KIP-966): Metadata's partitions, a page at a time.

As Kafka 4.4's DescribeTopicPartitionsRequestHandler answers it: the topics named (all
topics when none are), from the cursor's topic on, in name order, paged by
`topic_pages.py` within the smaller of the request's ResponsePartitionLimit and
`max.request.partition.size.limit`. Topics the principal may not DESCRIBE are
TOPIC_AUTHORIZATION_FAILED when named (after the page, whether they exist is not
disclosed) and left out when listing all. The partition entries are Metadata's
(`MetadataCache.partition_entries`), with no partition error (Kafka sets none here,
even without a leader) and no eligible leader replicas: one replica, no ELR.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from contextplane import limits
from contextplane.broker.authorization import Need, Needs, operations_of
from contextplane.broker.context import Reply, RequestContext
from contextplane.broker.internal_topics import is_internal
from contextplane.broker.loopshare import is_large
from contextplane.broker.pipeline import decide_late
from contextplane.broker.topic_pages import Page, TopicSlice, from_cursor, java_order, paginate
from contextplane.broker.topics import validate_topic_name
from contextplane.errors import KafkaError
from contextplane.protocol.error_codes import ErrorCode
from contextplane.security.acls import Operation, ResourceType
from contextplane.security.authorizer import Action

TOPIC = ResourceType.TOPIC
_NO_ID = uuid.UUID(int=0)


def candidates(ctx: RequestContext, request: Any) -> set[str] | None:
    """The topic names the request asks about from its cursor on, or None when the
    request is invalid (Kafka's InvalidRequestException: the cursor's topic not among
    those named, a negative cursor partition, or more names than the bound)."""
    cursor = request.cursor
    cursor_name = cursor.topic_name if cursor is not None else ""
    if not request.topics:
        names = from_cursor(ctx.topics.topics(), cursor_name)
    elif len(request.topics) > limits.DESCRIBE_TOPICS_PER_REQUEST_MAX:
        return None
    else:
        names = from_cursor((topic.name for topic in request.topics), cursor_name)
        if cursor is not None and cursor.topic_name not in names:
            return None
    if cursor is not None and cursor.partition_index < 0:
        return None
    return names


def needs(ctx: RequestContext, request: Any) -> Needs:
    """DESCRIBE on every topic asked about, logged when denied in both forms, as Kafka
    authorizes them (logIfDenied=true even when listing all topics); nothing for an
    invalid request, which is answered without looking at any topic."""
    names = candidates(ctx, request)
    if names is None:
        return Needs()
    return Needs(resources=[Need(Action(Operation.DESCRIBE, TOPIC, name)) for name in names])


async def describe_topic_partitions(ctx: RequestContext, request: Any) -> Reply:
    names = candidates(ctx, request)
    if names is None:
        return await _invalid(ctx, request)
    list_all = not request.topics
    authorized = [name for name in names if not ctx.denied(TOPIC, name)]
    if is_large(len(authorized)):
        authorized = await asyncio.to_thread(sorted, authorized, key=java_order)
    else:
        authorized.sort(key=java_order)
    cursor = request.cursor
    limit = max(
        min(ctx.settings.max_request_partition_size_limit, request.response_partition_limit), 1
    )
    records = ctx.topics.topics()

    def partitions_of(name: str) -> int | None:
        record = records.get(name)
        return record.partitions if record is not None else None

    page = paginate(
        authorized,
        partitions_of,
        (cursor.topic_name, cursor.partition_index) if cursor is not None else None,
        limit,
        list_unknown=not list_all,
    )
    decide_late(ctx, operations_of(TOPIC, [piece.name for piece in page.slices]))
    topics = [_topic(ctx, records, piece) for piece in page.slices]
    if not list_all:
        # Named and refused: after the page, without an id, whether it exists or not.
        refused = sorted((n for n in names if ctx.denied(TOPIC, n)), key=java_order)
        topics.extend(_failed(name, ErrorCode.topic_authorization_failed) for name in refused)
    return await ctx.large_encoded_reply(
        _entries(page),
        throttle_time=ctx.throttle_ms,
        topics=topics,
        next_cursor=_cursor(page),
    )


def _topic(ctx: RequestContext, records: Any, piece: TopicSlice) -> dict[str, Any]:
    operations = ctx.authorized_operations(TOPIC, piece.name)
    if not piece.known:
        return {
            "error_code": _unknown_error(piece.name),
            "name": piece.name,
            "topic_id": _NO_ID,
            "is_internal": is_internal(piece.name),
            "partitions": [],
            "topic_authorized_operations": operations,
        }
    record = records[piece.name]
    cache = ctx.services.metadata_cache
    partitions = [
        dict(entry, error_code=ErrorCode.none, eligible_leader_replicas=[], last_known_elr=[])
        for entry in cache.partition_entries(record, piece.start, piece.end)
    ]
    return {
        "error_code": ErrorCode.none,
        "name": piece.name,
        "topic_id": uuid.UUID(bytes=record.topic_id),
        "is_internal": is_internal(piece.name),
        "partitions": partitions,
        "topic_authorized_operations": operations,
    }


def _unknown_error(name: str) -> ErrorCode:
    """Kafka's answer for a named topic that does not exist: an invalid name says so."""
    try:
        validate_topic_name(name)
    except KafkaError as exc:
        return exc.code
    return ErrorCode.unknown_topic_or_partition


def _failed(name: str, code: ErrorCode) -> dict[str, Any]:
    """A topic answered with `code` alone: no id, no partitions."""
    return {
        "error_code": code,
        "name": name,
        "topic_id": _NO_ID,
        "is_internal": False,
        "partitions": [],
    }


def _entries(page: Page) -> int:
    return sum(piece.end - piece.start for piece in page.slices) + len(page.slices)


def _cursor(page: Page) -> dict[str, Any] | None:
    if page.next_cursor is None:
        return None
    name, index = page.next_cursor
    return {"topic_name": name, "partition_index": index}


async def _invalid(ctx: RequestContext, request: Any) -> Reply:
    """Kafka's error response (DescribeTopicPartitionsRequest.getErrorResponse): every
    topic named, duplicates too, with INVALID_REQUEST; no cursor."""
    return await ctx.large_encoded_reply(
        len(request.topics),
        throttle_time=ctx.throttle_ms,
        topics=[_failed(topic.name, ErrorCode.invalid_request) for topic in request.topics],
        next_cursor=None,
    )
