"""DescribeLogDirs (API 35): one log directory per broker, its data directory, listing
the partitions this broker leads with their sizes (RFC 0008 §3). A partition's size is
its bytes in objects (the object index) plus the WAL tail not yet uploaded, so
`kafka-log-dirs.sh` and disk-usage scripts read what the partition holds; the directory's
total and usable bytes are the data directory's file system's."""

from __future__ import annotations

import shutil
from typing import Any

from contextplane.broker.context import Reply, RequestContext
from contextplane.limits import PARTITIONS_PER_REQUEST_MAX
from contextplane.protocol.error_codes import ErrorCode
from contextplane.storage.partition import PartitionLog


async def partition_size(partition: PartitionLog) -> int:
    """Bytes in objects plus the batches not uploaded yet (the WAL tail)."""
    stats = partition.index.stats
    if stats.exact and stats.retained_bytes >= 0:
        uploaded = stats.retained_bytes
    else:  # a summary that cannot be trusted: count the ranges themselves
        uploaded = sum(r.size for r in await partition.index.load())
    cache = partition.cache
    pending = sum(b.size for b in cache[partition.first_unuploaded_index() :])
    return uploaded + pending


def _wanted(request: Any) -> dict[str, set[int]] | None | ErrorCode:
    """The partitions asked for (None: all), or INVALID_REQUEST past the bound."""
    if request.topics is None:
        return None
    # As many partitions as one CreateTopics may create.
    if sum(len(t.partitions) for t in request.topics) > PARTITIONS_PER_REQUEST_MAX:
        return ErrorCode.invalid_request
    wanted: dict[str, set[int]] = {}
    for topic in request.topics:
        wanted.setdefault(topic.topic, set()).update(int(p) for p in topic.partitions)
    return wanted


async def describe_log_dirs(ctx: RequestContext, request: Any) -> Reply:
    wanted = _wanted(request)
    if isinstance(wanted, ErrorCode):
        return ctx.reply(throttle_time=ctx.throttle_ms, error_code=wanted, results=[])
    topics: dict[str, list[dict[str, Any]]] = {}
    for partition in sorted(ctx.log.live_partitions(), key=lambda p: (p.topic, p.partition)):
        if partition.deleted or partition.released:
            continue
        if wanted is not None and partition.partition not in wanted.get(partition.topic, ()):
            continue
        topics.setdefault(partition.topic, []).append(
            {
                "partition_index": partition.partition,
                "partition_size": await partition_size(partition),
                "offset_lag": 0,  # no replica copies a log here (no future replicas)
                "is_future_key": False,
            }
        )
    data_dir = ctx.settings.data_dir
    usage = shutil.disk_usage(data_dir)
    result = {
        "error_code": ErrorCode.none,
        "log_dir": str(data_dir.resolve()),
        "topics": [{"name": name, "partitions": parts} for name, parts in topics.items()],
        "total_bytes": usage.total,
        "usable_bytes": usage.free,
        "is_cordoned": False,
    }
    count = sum(len(parts) for parts in topics.values())
    return await ctx.large_reply(
        count, throttle_time=ctx.throttle_ms, error_code=ErrorCode.none, results=[result]
    )


def refuse(ctx: RequestContext, request: Any, error: ErrorCode) -> Reply:
    """Kafka answers an unauthorized caller with no log dirs and the error at the top."""
    return ctx.reply(throttle_time=ctx.throttle_ms, error_code=error, results=[])
