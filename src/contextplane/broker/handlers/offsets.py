"""ListOffsets and DeleteRecords."""

from __future__ import annotations

import asyncio
from typing import Any

from contextplane.broker.context import Reply, RequestContext
from contextplane.broker.handlers.fetch import check_leader_epoch
from contextplane.broker.internal_topics import is_internal
from contextplane.broker.loopshare import LoopShare
from contextplane.broker.zone_forward import ask_leaders
from contextplane.broker.zone_forward import entry as leaders_entry
from contextplane.errors import KafkaError
from contextplane.protocol.error_codes import ErrorCode
from contextplane.protocol.record_scan import record_timestamps
from contextplane.protocol.records import iter_batch_headers
from contextplane.security.acls import ResourceType
from contextplane.storage.partition import PartitionLog

LATEST = -1
EARLIEST = -2
MAX_TIMESTAMP = -3
EARLIEST_LOCAL = -4
LATEST_TIERED = -5
EARLIEST_PENDING_UPLOAD = -6

# The lowest special timestamp each ListOffsets version knows (KIP-734, KIP-405,
# KIP-1005, KIP-1023); Kafka answers a lower one UNSUPPORTED_VERSION.
_OLDEST_SPECIAL_BY_VERSION = {7: MAX_TIMESTAMP, 8: EARLIEST_LOCAL, 9: LATEST_TIERED}


def _oldest_special(version: int) -> int:
    if version >= 11:
        return EARLIEST_PENDING_UPLOAD
    return _OLDEST_SPECIAL_BY_VERSION.get(min(version, 9), EARLIEST)


async def list_offsets(ctx: RequestContext, request: Any) -> Reply:
    await ctx.topics.find_missing(topic.name for topic in request.topics)
    # Partitions this broker stands in for (the zone writes' proxy): their leaders answer.
    handed = await ask_leaders(ctx, request, "name", "partition_index")
    topics = []
    count = 0
    share = LoopShare()
    for topic in request.topics:
        partitions = []
        for wanted in topic.partitions:
            if share.due():
                await asyncio.sleep(0)
            count += 1
            entry: dict[str, Any] = {
                "partition_index": wanted.partition_index,
                "error_code": ErrorCode.none,
                "timestamp": -1,
                "offset": -1,
                "leader_epoch": -1,
            }
            try:
                ctx.require(ResourceType.TOPIC, topic.name)
                answer = handed.get((topic.name, wanted.partition_index))
                if answer is not None:
                    partitions.append(leaders_entry(answer, entry))
                    continue
                partition = ctx.log.partition(topic.name, wanted.partition_index)
                check_leader_epoch(partition, getattr(wanted, "current_leader_epoch", -1))
                if wanted.timestamp < _oldest_special(ctx.api_version):
                    raise KafkaError(
                        ErrorCode.unsupported_version,
                        f"timestamp {wanted.timestamp} needs a newer ListOffsets version",
                    )
                offset, timestamp = await lookup_offset(
                    ctx, partition, wanted.timestamp, getattr(request, "isolation_level", 0)
                )
                entry.update(
                    offset=offset, timestamp=timestamp, leader_epoch=partition.leader_epoch
                )
            except KafkaError as exc:
                entry["error_code"] = exc.code
            except OSError:  # the object store failed: this partition only
                entry["error_code"] = ErrorCode.kafka_storage_error
            partitions.append(entry)
        topics.append({"name": topic.name, "partitions": partitions})
    return await ctx.large_reply(count, throttle_time=ctx.throttle_ms, topics=topics)


async def lookup_offset(
    ctx: RequestContext, partition: PartitionLog, target: int, isolation_level: int
) -> tuple[int, int]:
    # The last offset a consumer of this isolation level may fetch: read_committed
    # (isolation level 1) sees up to the LSO, read_uncommitted up to the high watermark.
    fetchable = partition.last_stable_offset if isolation_level == 1 else partition.high_watermark
    if target == LATEST:
        return fetchable, -1
    if target in (EARLIEST, EARLIEST_LOCAL):
        return partition.log_start_offset, -1
    # Every topic keeps its data in object storage, contextplane's only tier, so the
    # tiered answers (Kafka's with remote storage enabled) come from the uploads.
    if target == LATEST_TIERED:  # the last offset in an object, -1 before the first
        return (partition.object_end_offset - 1 if partition.object_end_offset else -1), -1
    if target == EARLIEST_PENDING_UPLOAD:  # the first offset not yet in an object
        return partition.object_end_offset, -1
    found = await _search(ctx, partition, target)
    # Kafka's Partition.fetchOffsetForTimestamp: a record found past what the consumer
    # may fetch (an open transaction's, or not yet durable) is no answer.
    return found if found[0] < fetchable else (-1, -1)


async def _search(ctx: RequestContext, partition: PartitionLog, target: int) -> tuple[int, int]:
    """The first record at or after timestamp `target`, or the one with the greatest
    timestamp for MAX_TIMESTAMP; (-1, -1) for none."""
    best: tuple[int, int] = (-1, -1)
    for chunk in await ctx.log.batches_for_lookup(partition):
        view = memoryview(chunk)
        position = 0
        for header in iter_batch_headers(chunk):
            size = header.total_bytes
            last = header.base_offset + header.last_offset_delta
            if last < partition.log_start_offset or header.is_control:
                position += size
                continue
            if target == MAX_TIMESTAMP:
                if header.max_timestamp > best[1]:
                    for offset, timestamp in record_timestamps(
                        bytes(view[position : position + size])
                    ):
                        if timestamp > best[1] and offset >= partition.log_start_offset:
                            best = (offset, timestamp)
            elif header.max_timestamp >= target:
                for offset, timestamp in record_timestamps(bytes(view[position : position + size])):
                    if timestamp >= target and offset >= partition.log_start_offset:
                        return offset, timestamp
            position += size
    return best


async def delete_records(ctx: RequestContext, request: Any) -> Reply:
    topics = []
    for topic in request.topics:
        partitions = []
        for wanted in topic.partitions:
            entry: dict[str, Any] = {
                "partition_index": wanted.partition_index,
                "low_watermark": -1,
                "error_code": ErrorCode.none,
            }
            try:
                ctx.require(ResourceType.TOPIC, topic.name)
                if is_internal(topic.name):  # Kafka's ReplicaManager refuses it first
                    raise KafkaError(
                        ErrorCode.invalid_topic_exception,
                        f"Cannot delete records of internal topic {topic.name}",
                    )
                partition = ctx.log.partition(topic.name, wanted.partition_index)
                offset = partition.high_watermark if wanted.offset == -1 else wanted.offset
                if offset < 0 or offset > partition.high_watermark:
                    raise KafkaError(ErrorCode.offset_out_of_range)
                await ctx.log.advance_log_start(partition, offset)
                entry["low_watermark"] = partition.log_start_offset
            except KafkaError as exc:
                entry["error_code"] = exc.code
            ctx.audit.record(
                ctx,
                "DeleteRecords",
                "partition",
                f"{topic.name}-{wanted.partition_index}",
                entry["error_code"],
                {"offset": wanted.offset, "low_watermark": entry["low_watermark"]},
            )
            partitions.append(entry)
        topics.append({"name": topic.name, "partitions": partitions})
    return ctx.reply(throttle_time=ctx.throttle_ms, topics=topics)
