"""Fetch: read up to the high watermark (read_committed: the last stable offset, with
the aborted transactions in range); long-poll on max_wait / min_bytes.

No incremental fetch sessions (KIP-227): the response's session id is always 0, which
tells clients to send full fetch requests, as a broker with sessions disabled does.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

from contextplane import limits
from contextplane.broker.access_audit import audit_allowed_read
from contextplane.broker.context import Reply, RequestContext, later
from contextplane.broker.fetch_masking import mask_fetch
from contextplane.broker.handlers import fetch_replica
from contextplane.broker.handlers.current_leader import name_current_leaders
from contextplane.broker.handlers.fetch_aborted import leader_aborted_entries
from contextplane.broker.handlers.fetch_replica import ReplicaTarget
from contextplane.broker.loopshare import LoopShare
from contextplane.broker.replica_selector import (
    connection_zone,
    may_serve_as_replica,
    preferred_replica,
)
from contextplane.errors import KafkaError
from contextplane.protocol.error_codes import ErrorCode
from contextplane.protocol.fetch_response import (
    NODE_ENDPOINTS_FROM,
    encode_fetch_response,
    records_size,
)
from contextplane.security.acls import ResourceType
from contextplane.storage.partition import PartitionLog
from contextplane.storage.reader import READ_COMMITTED, ReadRequest

log = logging.getLogger(__name__)


def _resolve(ctx: RequestContext, topic: Any) -> tuple[str | None, Any]:
    """(topic name or None, topic id) of one requested topic."""
    topic_id = getattr(topic, "topic_id", None)
    name = getattr(topic, "topic", None)
    if name is None and topic_id is not None:
        record = ctx.topics.by_id(topic_id.bytes)
        return (record.name if record else None), topic_id
    return name, topic_id


def _distinct_partitions(
    ctx: RequestContext, topics: Any
) -> list[tuple[str | None, Any, list[Any]]]:
    """(name, topic id, partition entries) per topic, one entry per topic-partition.

    Kafka builds a Fetch request's partitions into a map keyed by topic-partition: a
    partition listed more than once is read once, with its last entry, at the place of
    its first.
    """
    latest: dict[tuple[Any, int], tuple[str | None, Any, Any]] = {}
    for topic in topics:
        name, topic_id = _resolve(ctx, topic)
        key = name if name is not None else topic_id
        for wanted in topic.partitions:
            latest[(key, wanted.partition)] = (name, topic_id, wanted)
    grouped: dict[Any, tuple[str | None, Any, list[Any]]] = {}
    for (key, _), (name, topic_id, wanted) in latest.items():
        grouped.setdefault(key, (name, topic_id, []))[2].append(wanted)
    return list(grouped.values())


def check_leader_epoch(partition: PartitionLog, current_leader_epoch: int) -> None:
    """A client's epoch behind ours is FENCED_LEADER_EPOCH, ahead is UNKNOWN_LEADER_EPOCH."""
    if current_leader_epoch < 0 or current_leader_epoch == partition.leader_epoch:
        return
    if current_leader_epoch < partition.leader_epoch:
        raise KafkaError(ErrorCode.fenced_leader_epoch)
    raise KafkaError(ErrorCode.unknown_leader_epoch)


async def fetch(ctx: RequestContext, request: Any) -> Reply:
    wait_ms = min(max(int(request.max_wait.total_seconds() * 1000), 0), limits.FETCH_WAIT_MS_MAX)
    targets: list[tuple[dict[str, Any], PartitionLog | None, Any]] = []
    replicas: list[ReplicaTarget] = []  # led elsewhere, maybe served here (KIP-392)
    topics: list[dict[str, Any]] = []
    for name, topic_id, wanted_partitions in _distinct_partitions(ctx, request.topics):
        partitions: list[dict[str, Any]] = []
        for wanted in wanted_partitions:
            entry: dict[str, Any] = {
                "partition_index": wanted.partition,
                "error_code": ErrorCode.none,
                "high_watermark": -1,
                "last_stable_offset": -1,
                "log_start_offset": -1,
                "aborted_transactions": None,
                "preferred_read_replica": -1,
                "records": b"",
            }
            partitions.append(entry)
            partition = None
            if name is None:
                entry["error_code"] = ErrorCode.unknown_topic_id
                entry["aborted_transactions"] = []  # Kafka's answer lists none, not null
            elif ctx.denied(ResourceType.TOPIC, name):
                entry["error_code"] = ErrorCode.topic_authorization_failed
            else:
                try:
                    partition = ctx.log.partition(name, wanted.partition)
                    # current_leader_epoch exists from Fetch v9 (KIP-320); older is -1.
                    check_leader_epoch(partition, getattr(wanted, "current_leader_epoch", -1))
                    # A consumer of another zone is sent to a broker of its own (KIP-392).
                    if _in_log(partition, wanted.fetch_offset):
                        node = preferred_replica(ctx, request, name, wanted.partition)
                        entry["preferred_read_replica"] = node
                except KafkaError as exc:
                    entry["error_code"] = exc.code
                    if exc.code == ErrorCode.not_leader_or_follower and may_serve_as_replica(
                        ctx, request
                    ):
                        replicas.append(ReplicaTarget(entry, name, wanted))
                    partition = None
            targets.append((entry, partition, wanted))
        topics.append(
            {
                "topic": name or "",
                "topic_id": topic_id or uuid.UUID(int=0),
                "partitions": partitions,
            }
        )

    # Kafka: min_bytes at most what the client's consumer_byte_rate lets one fetch carry.
    window_bytes = ctx.services.quotas.fetch_bytes_max(ctx.principal, ctx.header.client_id)
    min_bytes = request.min_bytes if window_bytes is None else min(request.min_bytes, window_bytes)
    if replicas:
        await fetch_replica.resolve(ctx, replicas)
    total = await _read_all(ctx, request, targets, replicas)
    if total >= min_bytes or wait_ms == 0 or _has_error(targets) or _redirects(targets):
        everything = targets + fetch_replica.served(replicas)
        await mask_fetch(ctx, everything)
        return Reply(body=_response(ctx, topics, everything, request))

    async def long_poll() -> Any:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_ms / 1000
        amount = total
        while amount < min_bytes:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            waiters = [p.waiter() for _, p, _ in targets if p is not None]
            waiters += fetch_replica.waiters(ctx, replicas)
            if not waiters:
                break
            await asyncio.wait(waiters, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
            for waiter in waiters:
                waiter.cancel()
            amount = await _read_all(ctx, request, targets, replicas)
        everything = targets + fetch_replica.served(replicas)
        await mask_fetch(ctx, everything)
        return _response(ctx, topics, everything, request)

    return later(long_poll())


def _has_error(targets: list[tuple[dict[str, Any], PartitionLog | None, Any]]) -> bool:
    return any(entry["error_code"] != ErrorCode.none for entry, _, _ in targets)


def _redirects(targets: list[tuple[dict[str, Any], PartitionLog | None, Any]]) -> bool:
    """Some partition names a preferred read replica: Kafka answers at once."""
    return any(entry["preferred_read_replica"] >= 0 for entry, _, _ in targets)


def _in_log(partition: PartitionLog, offset: int) -> bool:
    """An offset a read here would not answer OFFSET_OUT_OF_RANGE (only such a fetch is
    sent to a replica, as Kafka's leader picks one only among replicas holding it)."""
    return partition.log_start_offset <= offset <= partition.high_watermark


async def _read_all(
    ctx: RequestContext,
    request: Any,
    targets: list[tuple[dict[str, Any], PartitionLog | None, Any]],
    replicas: list[ReplicaTarget],
) -> int:
    """Read every partition within the limits; returns the bytes read.

    KIP-74: only the first batch of the first non-empty partition may exceed
    `partition_max_bytes` / `max_bytes` / `fetch.max.bytes` (so a consumer always
    progresses).
    """
    storage = ctx.log
    # Kafka: min(request max_bytes, broker fetch.max.bytes); before v3 only the latter.
    budget = ctx.settings.fetch_max_bytes
    if ctx.api_version >= 3:
        budget = min(request.max_bytes, budget)
    # Kafka: at most one quota window of consumer_byte_rate per response.
    window_bytes = ctx.services.quotas.fetch_bytes_max(ctx.principal, ctx.header.client_id)
    if window_bytes is not None:
        budget = min(budget, window_bytes)
    # Responses clients have not read yet pin their bytes: past half the memory budget a
    # Fetch gets its first batch only (KIP-74), whatever it asked for. What it may take is
    # reserved while it reads, so Fetches read side by side do not all take the same room.
    memory = storage.budget
    budget = min(budget, memory.response_room)
    memory.response_reserved_bytes += budget
    try:
        return await _read_within(ctx, request, targets, replicas, budget)
    finally:
        memory.response_reserved_bytes -= budget


async def _read_within(
    ctx: RequestContext,
    request: Any,
    targets: list[tuple[dict[str, Any], PartitionLog | None, Any]],
    replicas: list[ReplicaTarget],
    budget: int,
) -> int:
    storage = ctx.log
    reading: list[tuple[dict[str, Any], PartitionLog, Any]] = []
    for entry, partition, wanted in targets:
        if partition is None:
            continue
        entry["records"] = b""
        if entry["preferred_read_replica"] >= 0:
            # Kafka's leader skips the read and answers its offsets with no records.
            entry.update(
                high_watermark=partition.high_watermark,
                last_stable_offset=partition.last_stable_offset,
                log_start_offset=partition.log_start_offset,
            )
            continue
        if partition.deleted:  # deleted or fenced during a long poll
            entry["error_code"] = (
                ErrorCode.not_leader_or_follower
                if partition.released
                else ErrorCode.unknown_topic_or_partition
            )
            continue
        reading.append((entry, partition, wanted))
    # One read for the whole Fetch: its partitions' object ranges are planned together.
    requests = [
        ReadRequest(
            partition, wanted.fetch_offset, wanted.partition_max_bytes, request.isolation_level
        )
        for _, partition, wanted in reading
    ]
    # A catch-up read's assembly gives the loop back between partitions, as Metadata does.
    results = await storage.read_many(requests, budget, LoopShare().due)
    total = 0
    for (entry, partition, wanted), chunks in zip(reading, results, strict=True):
        if isinstance(chunks, KafkaError):
            # Kafka reports -1 watermarks with a partition error.
            entry.update(error_code=chunks.code, high_watermark=-1, log_start_offset=-1)
            continue
        if isinstance(chunks, OSError):  # an object store outage fails this partition only
            log.warning(
                "fetch %s-%d: object read failed: %s", partition.topic, partition.partition, chunks
            )
            entry.update(error_code=ErrorCode.kafka_storage_error, high_watermark=-1)
            continue
        # The chunks go to the response as they are (protocol/fetch_response.py).
        total += records_size(chunks)
        entry["records"] = chunks
        entry["high_watermark"] = partition.high_watermark
        entry["last_stable_offset"] = partition.last_stable_offset
        entry["log_start_offset"] = partition.log_start_offset
        if request.isolation_level == READ_COMMITTED:
            entry["aborted_transactions"] = await leader_aborted_entries(
                storage.metadata, partition, wanted.fetch_offset, chunks
            )
    if replicas:
        committed = request.isolation_level == READ_COMMITTED
        total += await fetch_replica.read(ctx, replicas, budget, total, committed)
    return total


def _response(
    ctx: RequestContext,
    topics: list[dict[str, Any]],
    targets: list[tuple[dict[str, Any], PartitionLog | None, Any]],
    request: Any,
) -> Any:
    size = sum(max(records_size(p["records"]), 0) for t in topics for p in t["partitions"])
    if ctx.span is not None:
        from contextplane.broker.request_spans import describe_fetch  # only when traced

        describe_fetch(ctx.span, topics, size)
    if size:
        quota_ms = ctx.services.quotas.fetch_throttle_ms(ctx.principal, ctx.header.client_id, size)
        if quota_ms:
            # Kafka answers a fetch over consumer_byte_rate with no data at all (its bytes
            # are not counted) and mutes the connection for the throttle.
            ctx.throttle(quota_ms)
            topics = []
        else:
            _record_reads(ctx, targets)
    _count_fetches(ctx, targets, counts_bytes=bool(topics))
    if topics:
        count_zone_bytes(ctx, size, getattr(request, "rack_id", None))
    endpoints = _current_leaders(ctx, topics) if _has_error(targets) else []
    header = ctx.header
    # Frame parts with the record chunks in place, byte for byte what kio writes.
    return encode_fetch_response(
        header.api_version,
        header.correlation_id,
        ctx.throttle_ms,
        ErrorCode.none,
        0,
        topics,
        endpoints,
    )


# Kafka names the current leader with both: the partition moved, or the client's epoch is
# behind this leader's.
_LEADER_ERRORS = (ErrorCode.not_leader_or_follower, ErrorCode.fenced_leader_epoch)


def _current_leaders(ctx: RequestContext, topics: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Fetch v16+ (KIP-951), as Kafka answers only from the version that also carries
    NodeEndpoints (the CurrentLeader tag exists from v12, unused by Kafka below v16):
    each such partition names its current leader; the NodeEndpoints of those named."""
    if ctx.api_version < NODE_ENDPOINTS_FROM:
        return []
    return name_current_leaders(
        ctx,
        ((t["topic"], p["partition_index"], p) for t in topics for p in t["partitions"]),
        _LEADER_ERRORS,
    )


def _count_fetches(
    ctx: RequestContext,
    targets: list[tuple[dict[str, Any], PartitionLog | None, Any]],
    counts_bytes: bool,
) -> None:
    """Kafka's TotalFetchRequests and BytesOut per topic: every hosted partition fetched,
    and the record bytes sent (none when a quota emptied the response)."""
    stats = ctx.services.stats
    for entry, partition, _ in targets:
        if partition is not None:
            size = max(records_size(entry["records"]), 0) if counts_bytes else 0
            stats.fetched(partition.topic, size)
            partition.bytes_out += size


def count_zone_bytes(ctx: RequestContext, size: int, rack_id: str | None) -> None:
    """A response's record bytes, by the client's zone: its client.id's, else the
    rack_id (KIP-392, Fetch v11+) of its first Fetch that names one."""
    connection_zone(ctx, rack_id).bytes_out += size


def _record_reads(
    ctx: RequestContext, targets: list[tuple[dict[str, Any], PartitionLog | None, Any]]
) -> None:
    """Read receipts, and allowed reads of audited topics, for what the response carries."""
    receipts = ctx.services.receipts
    if receipts is not None:
        for entry, partition, wanted in targets:
            if partition is not None and entry["records"]:
                receipts.fetched(
                    ctx, partition.topic, partition.partition, wanted.fetch_offset, entry["records"]
                )
    if ctx.audit.audits_any_access:
        read = {p.topic for entry, p, _ in targets if p is not None and entry["records"]}
        audit_allowed_read(ctx, read)
