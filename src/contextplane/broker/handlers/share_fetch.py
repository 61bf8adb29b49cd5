"""ShareFetch and ShareAcknowledge (KIP-932): a share consumer's reads and
acknowledgements, in share sessions.

A ShareFetch first applies the acknowledgements it carries, then reads each partition of
the session from where its share partition has records to offer and acquires up to
`max_records` of them for the member; the response carries the batches holding acquired
records and the acquired ranges (the client delivers only those), as Kafka slices them
(`ShareFetchUtils.maybeSliceFetchRecords`). A read is bounded by what the request can
acquire, from the bytes per record the partition's earlier reads showed. Every change
is saved in the metadata store before the answer. With nothing to acquire it waits up
to `max_wait` for new records or released ones.
"""

from __future__ import annotations

import asyncio
import struct
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from contextplane import limits
from contextplane.broker.context import Reply, RequestContext, later
from contextplane.broker.handlers.offsets import lookup_offset
from contextplane.broker.handlers.share_groups import coordinator, member_id_valid
from contextplane.broker.loopshare import LoopShare
from contextplane.coordinators.share_coordinator import ShareCoordinator
from contextplane.coordinators.share_group_configs import BY_DURATION, EARLIEST
from contextplane.coordinators.share_partition import (
    AckType,
    Acquired,
    SharePartition,
    batches_valid,
    offsets_of,
)
from contextplane.coordinators.share_sessions import FINAL_EPOCH, INITIAL_EPOCH
from contextplane.errors import KafkaError
from contextplane.protocol.error_codes import ErrorCode
from contextplane.security.acls import ResourceType
from contextplane.storage.aborted_reads import aborted_overlapping
from contextplane.storage.partition import PartitionLog
from contextplane.storage.reader import READ_COMMITTED, READ_UNCOMMITTED, ReadRequest
from contextplane.storage.transactions_index import AbortedTxn

_BASE_AND_LENGTH = struct.Struct(">qi")
_ATTRIBUTES = struct.Struct(">h")
_LAST_OFFSET_DELTA = struct.Struct(">i")
_PRODUCER_ID = struct.Struct(">q")
_ATTRIBUTES_AT = 21  # base offset, length, leader epoch, magic, crc
_LAST_OFFSET_DELTA_AT = 23
_PRODUCER_ID_AT = 43  # ... attributes, last offset delta, first and max timestamps
_TRANSACTIONAL = 0x10
_CONTROL = 0x20
# The share consumer's max.poll.records default: a request that names none gets this many.
_MAX_RECORDS_DEFAULT = 500
# The least a partition reads once its bytes per record are known, and how many times the
# records wanted it reads (room for records other members hold in between).
_READ_MIN = 64 * 1024
_READ_SLACK = 2
# ShareFetch / ShareAcknowledge v2 (KIP-1222): the RENEW acknowledgement type.
RENEW_FROM = 2
RENEW = int(AckType.RENEW)

Batches = list[tuple[int, int, tuple[int, ...]]]


@dataclass(slots=True)
class _Target:
    """One partition of a request: what the client sent and what it is answered."""

    topic: str | None
    topic_id: uuid.UUID
    index: int
    acks: Batches = field(default_factory=list)
    error: ErrorCode = ErrorCode.none
    ack_error: ErrorCode = ErrorCode.none
    log: PartitionLog | None = None
    records: bytes = b""
    acquired: list[Acquired] = field(default_factory=list)


def record_ranges(
    data: bytes, aborted: Sequence[AbortedTxn] = ()
) -> tuple[list[tuple[int, int]], int | None]:
    """The (first, last) offsets of the batches in `data` (whole RecordBatch v2 batches)
    whose records a share consumer may be given (not control batches', nor those of the
    `aborted` transactions: a read_committed group's), and one past the last offset.
    Ranges, not offsets: a compressed batch of 1 MB can hold a million records, and
    acquiring walks only as far as its bounds allow."""
    by_producer: dict[int, list[AbortedTxn]] = {}
    for txn in aborted:
        by_producer.setdefault(txn.producer_id, []).append(txn)
    ranges: list[tuple[int, int]] = []
    position, end = 0, None
    while position + 61 <= len(data):
        base, length = _BASE_AND_LENGTH.unpack_from(data, position)
        if length < 49 or position + 12 + length > len(data):
            break
        (attributes,) = _ATTRIBUTES.unpack_from(data, position + _ATTRIBUTES_AT)
        (delta,) = _LAST_OFFSET_DELTA.unpack_from(data, position + _LAST_OFFSET_DELTA_AT)
        if not attributes & _CONTROL and not (
            attributes & _TRANSACTIONAL
            and _in_aborted(
                by_producer, _PRODUCER_ID.unpack_from(data, position + _PRODUCER_ID_AT)[0], base
            )
        ):
            ranges.append((base, base + delta))
        end = base + delta + 1
        position += 12 + length
    return ranges, end


def acquired_batches(data: bytes, acquired: Sequence[Acquired]) -> bytes:
    """The whole batches of `data` that hold an acquired record (`acquired` ascending,
    as `SharePartition.acquire` returns them): Kafka sends no others, and the ranges
    tell the client which of their records are its."""
    kept: list[tuple[int, int]] = []
    position, index = 0, 0
    while position + 61 <= len(data) and index < len(acquired):
        base, length = _BASE_AND_LENGTH.unpack_from(data, position)
        if length < 49 or position + 12 + length > len(data):
            break
        (delta,) = _LAST_OFFSET_DELTA.unpack_from(data, position + _LAST_OFFSET_DELTA_AT)
        last, end = base + delta, position + 12 + length
        while index < len(acquired) and acquired[index].last_offset < base:
            index += 1
        if index < len(acquired) and acquired[index].first_offset <= last:
            if kept and kept[-1][1] == position:
                kept[-1] = (kept[-1][0], end)  # contiguous: one slice
            else:
                kept.append((position, end))
        position = end
    if len(kept) == 1 and kept[0] == (0, len(data)):
        return data
    return b"".join(data[a:b] for a, b in kept)


def _read_bound(partition: SharePartition, wanted: int, per_partition: int) -> int:
    """Bytes to read for `wanted` records: a few times what they took in this partition's
    earlier reads, at least its largest batch seen; the whole share of the budget until
    a read has shown them (or after a bounded read came back empty)."""
    per_record = partition.read_bytes_per_record
    if per_record <= 0:
        return per_partition
    estimate = max(int(per_record * wanted * _READ_SLACK), partition.read_batch_max, _READ_MIN)
    return min(per_partition, estimate)


def _note_read(partition: SharePartition, data: bytes) -> None:
    """What the read showed of this partition's record sizes (for `_read_bound`)."""
    if not data:
        # Nothing fitted a bounded read (a batch larger than any seen): read it all next.
        partition.read_bytes_per_record = 0.0
        return
    position, first, end, largest = 0, None, 0, 0
    while position + 61 <= len(data):
        base, length = _BASE_AND_LENGTH.unpack_from(data, position)
        if length < 49:
            break
        (delta,) = _LAST_OFFSET_DELTA.unpack_from(data, position + _LAST_OFFSET_DELTA_AT)
        first = base if first is None else first
        end, largest = base + delta + 1, max(largest, 12 + length)
        position += 12 + length
    if first is not None and end > first:
        partition.read_bytes_per_record = len(data) / (end - first)
        partition.read_batch_max = max(partition.read_batch_max, largest)


def _in_aborted(by_producer: dict[int, list[AbortedTxn]], producer_id: int, offset: int) -> bool:
    """Whether the producer's batch at `offset` is in one of its aborted transactions
    (from its first offset to its ABORT marker)."""
    return any(t.first_offset <= offset <= t.last_offset for t in by_producer.get(producer_id, ()))


def _resolve(ctx: RequestContext, topics: Any) -> list[_Target]:
    """The request's partitions, each once (a repeat is dropped: a request names at most
    every partition there is); a partition the topic does not have is answered
    UNKNOWN_TOPIC_OR_PARTITION and never joins a session."""
    known = ctx.topics
    targets = []
    seen: set[tuple[uuid.UUID | None, int]] = set()
    for topic in topics:
        record = known.by_id(topic.topic_id.bytes) if topic.topic_id is not None else None
        name = None if record is None else record.name
        for p in topic.partitions:
            index = int(p.partition_index)
            if (topic.topic_id, index) in seen:
                continue
            seen.add((topic.topic_id, index))
            target = _Target(name, topic.topic_id or uuid.UUID(int=0), index)
            target.acks = [
                (
                    int(b.first_offset),
                    int(b.last_offset),
                    tuple(int(t) for t in b.acknowledge_types),
                )
                for b in p.acknowledgement_batches
            ]
            if record is None:
                target.error = ErrorCode.unknown_topic_id
            elif ctx.denied(ResourceType.TOPIC, record.name):
                target.error = ErrorCode.topic_authorization_failed
            elif not 0 <= index < record.partitions:
                target.error = ErrorCode.unknown_topic_or_partition
            targets.append(target)
    return targets


async def _acknowledge(
    ctx: RequestContext,
    shares: ShareCoordinator,
    group_id: str,
    member_id: str,
    targets: list[_Target],
) -> None:
    now = shares.now_ms()
    renew_enabled = shares.values(group_id).renew_enabled  # share.renew.acknowledge.enable
    for target in targets:
        if not target.acks:
            continue
        if target.error != ErrorCode.none or target.topic is None:
            target.ack_error = target.error
            continue
        # RENEW is v2's: a v1 request naming it is malformed, as any other unknown type.
        max_type = RENEW if ctx.api_version >= RENEW_FROM else RENEW - 1
        if not batches_valid(target.acks, max_type):
            target.ack_error = ErrorCode.invalid_request
            continue
        key = (group_id, target.topic, target.index)
        try:  # served by the topic partition's leader, as Kafka's share-partition leader
            log = ctx.log.partition(target.topic, target.index)
        except KafkaError as exc:
            target.ack_error = exc.code
            continue
        await shares.lead(key, (log.stream_id, log.leader_epoch))
        partition = shares.existing(key)
        if partition is None:
            target.ack_error = ErrorCode.invalid_record_state
            continue
        if not renew_enabled and any(RENEW in types for _, _, types in target.acks):
            # Kafka: "Renewing acquisition locks is not enabled for the group."
            target.ack_error = ErrorCode.invalid_record_state
            continue
        target.ack_error = partition.acknowledge(member_id, target.acks, now)
    shares.notify_released()


async def _share_partition(
    ctx: RequestContext,
    shares: ShareCoordinator,
    group_id: str,
    target: _Target,
    log: PartitionLog,
) -> SharePartition:
    key = (group_id, target.topic or "", target.index)
    await shares.lead(key, (log.stream_id, log.leader_epoch))
    start = log.high_watermark
    if key not in shares.partitions:
        start = await _reset_offset(ctx, shares.values(group_id).offset_reset, log)
    partition = shares.partition(key, start)
    partition.move_start(log.log_start_offset)
    return partition


async def _reset_offset(ctx: RequestContext, reset: Any, log: PartitionLog) -> int:
    """Where a partition the group never fetched starts (`share.auto.offset.reset`,
    Kafka's default latest): the log's end, its start, or the first record stamped at or
    after now minus the duration (as ListOffsets by timestamp; the end when none is)."""
    if reset.strategy == EARLIEST:
        return log.log_start_offset
    if reset.strategy == BY_DURATION:
        # A duration reaching before the epoch asks for every record; a negative target
        # would be one of ListOffsets' special timestamps (-1 latest, -2 earliest, ...).
        since_ms = max(0, ctx.clock.wall_ms() - reset.duration_ms)
        offset, _ = await lookup_offset(ctx, log, since_ms, READ_UNCOMMITTED)
        if offset >= 0:
            return offset
    return log.high_watermark


async def _acquire_all(
    ctx: RequestContext,
    shares: ShareCoordinator,
    group_id: str,
    member_id: str,
    targets: list[_Target],
    max_records: int,
    max_bytes: int,
) -> int:
    """Read and acquire for every fetchable target; returns the records acquired."""
    reading: list[tuple[_Target, SharePartition, int]] = []
    # share.isolation.level: a read_committed group reads up to the last stable offset
    # and is given no record of an aborted transaction.
    committed = shares.values(group_id).read_committed
    isolation = READ_COMMITTED if committed else READ_UNCOMMITTED
    for target in targets:
        target.records, target.acquired = b"", []
        if target.error != ErrorCode.none or target.topic is None:
            continue
        try:
            log = target.log = ctx.log.partition(target.topic, target.index)
        except KafkaError as exc:
            target.error = exc.code
            continue
        partition = await _share_partition(ctx, shares, group_id, target, log)
        start = partition.next_fetch_offset()
        end = log.last_stable_offset if committed else log.high_watermark
        if start is not None and start < end:
            reading.append((target, partition, start))
    if not reading:
        return 0
    budget = min(max_bytes, ctx.settings.fetch_max_bytes)
    per_partition = max(1, budget // len(reading))
    requests = [
        ReadRequest(t.log, start, _read_bound(p, max_records, per_partition), isolation)
        for t, p, start in reading
    ]
    results = await ctx.log.read_many(requests, budget, LoopShare().due)
    acquired = 0
    now = shares.now_ms()
    for (target, partition, start), chunks in zip(reading, results, strict=True):
        if isinstance(chunks, KafkaError):
            target.error = chunks.code
            continue
        if isinstance(chunks, OSError):
            target.error = ErrorCode.kafka_storage_error
            continue
        data = _joined(chunks)
        _note_read(partition, data)
        ranges, read_end = record_ranges(data)
        txns = target.log.transactions if target.log is not None else None
        if committed and txns is not None and read_end is not None and txns.aborted_since(start):
            # Only the aborted transactions the batches read may hold, as Fetch lists them.
            assert target.log is not None
            aborted = await aborted_overlapping(ctx.log.metadata, target.log, start, read_end)
            ranges, read_end = record_ranges(data, aborted)
        # A batch may begin far below the SPSO (a read starts at a batch's base offset).
        spso = partition.start_offset
        ranges = [(max(first, spso), last) for first, last in ranges if last >= spso]
        target.acquired = partition.acquire(
            member_id, offsets_of(ranges), max_records - acquired, now, read_end
        )
        if target.acquired:
            target.records = acquired_batches(data, target.acquired)
            acquired += sum(a.last_offset - a.first_offset + 1 for a in target.acquired)
        if acquired >= max_records:
            break
    if acquired:
        shares.kick()  # the timer task releases these when their locks expire
    return acquired


def _joined(chunks: bytes | Sequence[bytes | memoryview]) -> bytes:
    if isinstance(chunks, bytes | bytearray | memoryview):
        return bytes(chunks)
    return b"".join(chunks)


def _topics(ctx: RequestContext, targets: list[_Target], fetch: bool) -> list[dict[str, Any]]:
    by_topic: dict[uuid.UUID, list[dict[str, Any]]] = {}
    for target in targets:
        leader = {"leader_id": -1, "leader_epoch": -1}
        if target.log is not None:
            leader = {"leader_id": ctx.cluster.node_id, "leader_epoch": target.log.leader_epoch}
        entry: dict[str, Any] = {
            "partition_index": target.index,
            "error_code": target.error,
            "current_leader": leader,
        }
        if fetch:
            entry.update(
                acknowledge_error_code=target.ack_error,
                records=target.records,
                acquired_records=[
                    {
                        "first_offset": a.first_offset,
                        "last_offset": a.last_offset,
                        "delivery_count": a.delivery_count,
                    }
                    for a in target.acquired
                ],
            )
        else:
            entry["error_code"] = (
                target.ack_error if target.error == ErrorCode.none else target.error
            )
        by_topic.setdefault(target.topic_id, []).append(entry)
    return [{"topic_id": t, "partitions": p} for t, p in by_topic.items()]


def _fetchable(targets: list[_Target]) -> set[tuple[str, int]]:
    """The partitions a session may hold: known, existing, allowed ones."""
    return {(t.topic, t.index) for t in targets if t.topic and t.error == ErrorCode.none}


def _session_error(
    ctx: RequestContext,
    shares: ShareCoordinator,
    group_id: str,
    member_id: str,
    epoch: int,
    targets: list[_Target],
) -> ErrorCode:
    """Open, check or advance the member's share session for a request at `epoch`."""
    key = (group_id, member_id)
    if epoch == INITIAL_EPOCH:
        if any(t.acks for t in targets):
            return ErrorCode.invalid_request  # nothing can be acknowledged in a new session
        shares.release(group_id, member_id)  # a new session gives back the old one's records
        owner = ctx.connection
        return shares.sessions.open(
            key, _fetchable(targets), owner, lambda: shares.connection_lost(key, owner)
        )
    if epoch == FINAL_EPOCH:
        return shares.sessions.check_final(key)
    code, session = shares.sessions.advance(key, epoch)
    if session is not None:
        session.partitions.update(_fetchable(targets))
    return code


def _session_targets(
    ctx: RequestContext,
    shares: ShareCoordinator,
    group_id: str,
    member_id: str,
    asked: list[_Target],
) -> list[_Target]:
    """The request's partitions, then the session's others (an incremental ShareFetch
    fetches every partition of its session)."""
    session = shares.sessions.sessions.get((group_id, member_id))
    targets = list(asked)
    named = {(t.topic, t.index) for t in asked}
    known = ctx.topics.topics()
    for topic, index in sorted(session.partitions if session else ()):
        record = known.get(topic)
        if (topic, index) in named or record is None:
            continue
        targets.append(_Target(topic, uuid.UUID(bytes=record.topic_id), index))
    return targets


def _malformed(request: Any) -> ErrorCode:
    """Kafka 4.4's KafkaApis checks before any session: a group id (null is refused, an
    empty one is a group like any other) and the member id's shape (`isMemberIdValid`,
    after READ on the group, which the route checked). Nothing asks whether the member
    belongs to the group: a share session is keyed by (group, member id) alone, and one
    whose member left or never joined fetches and acknowledges as any other."""
    if request.group_id is None or not member_id_valid(request.member_id):
        return ErrorCode.invalid_request
    return ErrorCode.none


async def share_fetch(ctx: RequestContext, request: Any) -> Reply:
    shares = coordinator(ctx)
    group_id, member_id = request.group_id or "", request.member_id or ""
    epoch = int(request.share_session_epoch)
    asked = _resolve(ctx, request.topics)
    lock_ms = (
        shares.values(group_id).record_lock_duration_ms
        if group_id
        else shares.config.record_lock_duration_ms
    )

    def top_level(code: ErrorCode) -> Reply:
        # Kafka's ShareFetchRequest.getErrorResponse: the code alone, a lock timeout of 0.
        return ctx.reply(
            throttle_time=ctx.throttle_ms,
            error_code=code,
            acquisition_lock_timeout=0,
            responses=[],
            node_endpoints=[],
        )

    if (code := _malformed(request)) != ErrorCode.none:
        return top_level(code)
    code = _session_error(ctx, shares, group_id, member_id, epoch, asked)
    if code != ErrorCode.none:
        return top_level(code)
    session = shares.sessions.sessions.get((group_id, member_id))
    if session is not None:
        for topic in request.forgotten_topics_data:
            record = ctx.topics.by_id(topic.topic_id.bytes) if topic.topic_id else None
            if record is not None:
                session.partitions.difference_update(
                    (record.name, int(p)) for p in topic.partitions
                )
    await _acknowledge(ctx, shares, group_id, member_id, asked)
    if epoch == FINAL_EPOCH:
        shares.sessions.close((group_id, member_id))
        shares.release(group_id, member_id)
        await _save(shares, asked)
        return ctx.reply(
            throttle_time=ctx.throttle_ms,
            error_code=ErrorCode.none,
            acquisition_lock_timeout=lock_ms,
            responses=_topics(ctx, asked, fetch=True),
            node_endpoints=[],
        )
    if getattr(request, "is_renew_ack", False):
        # v2: a request renewing locks fetches nothing new (Kafka answers it at once).
        await _save(shares, asked)
        return ctx.reply(
            throttle_time=ctx.throttle_ms,
            error_code=ErrorCode.none,
            acquisition_lock_timeout=lock_ms,
            responses=_topics(ctx, asked, fetch=True),
            node_endpoints=[],
        )
    targets = _session_targets(ctx, shares, group_id, member_id, asked)
    max_records = int(request.max_records) if request.max_records > 0 else _MAX_RECORDS_DEFAULT
    max_bytes = int(request.max_bytes)
    wait_ms = min(max(int(request.max_wait.total_seconds() * 1000), 0), limits.FETCH_WAIT_MS_MAX)

    async def answer() -> Any:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_ms / 1000
        while True:
            got = await _acquire_all(
                ctx, shares, group_id, member_id, targets, max_records, max_bytes
            )
            remaining = deadline - loop.time()
            logs = [t.log for t in targets if t.log is not None]
            if got or remaining <= 0 or not logs or any(t.error for t in targets):
                break
            waiters = [log.waiter() for log in logs] + [shares.released_waiter()]
            await asyncio.wait(waiters, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
            for waiter in waiters:
                waiter.cancel()
        await _save(shares, targets)
        shown = [t for t in targets if t in asked or t.acquired or t.error != ErrorCode.none]
        return ctx.response(
            throttle_time=ctx.throttle_ms,
            error_code=ErrorCode.none,
            acquisition_lock_timeout=lock_ms,
            responses=_topics(ctx, shown, fetch=True),
            node_endpoints=[],
        )

    if wait_ms == 0:
        return Reply(body=await answer())
    return later(answer())


async def _save(shares: ShareCoordinator, targets: list[_Target]) -> None:
    """Saved before the answer: a store that refuses fails the partitions that changed
    (their change stays in memory and the timer task saves it once the store is back)."""
    if await shares.save():
        return
    for target in targets:
        if target.acks and target.ack_error == ErrorCode.none:
            target.ack_error = ErrorCode.kafka_storage_error
        if target.acquired:
            target.error = ErrorCode.kafka_storage_error
            target.records, target.acquired = b"", []


async def share_acknowledge(ctx: RequestContext, request: Any) -> Reply:
    shares = coordinator(ctx)
    group_id, member_id = request.group_id or "", request.member_id or ""
    epoch = int(request.share_session_epoch)
    asked = _resolve(ctx, request.topics)

    def top_level(code: ErrorCode) -> Reply:
        return ctx.reply(
            throttle_time=ctx.throttle_ms, error_code=code, responses=[], node_endpoints=[]
        )

    if (code := _malformed(request)) != ErrorCode.none:
        return top_level(code)
    if epoch == INITIAL_EPOCH:
        return top_level(ErrorCode.invalid_share_session_epoch)
    code = _session_error(ctx, shares, group_id, member_id, epoch, asked)
    if code != ErrorCode.none:
        return top_level(code)
    await _acknowledge(ctx, shares, group_id, member_id, asked)
    if epoch == FINAL_EPOCH:
        shares.sessions.close((group_id, member_id))
        shares.release(group_id, member_id)
    await _save(shares, asked)
    return ctx.reply(
        throttle_time=ctx.throttle_ms,
        error_code=ErrorCode.none,
        acquisition_lock_timeout=shares.values(group_id).record_lock_duration_ms,  # v2
        responses=_topics(ctx, asked, fetch=False),
        node_endpoints=[],
    )
