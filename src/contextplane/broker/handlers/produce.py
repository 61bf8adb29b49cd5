"""Produce: validate each partition's batch, append, answer once all are durable.

Three steps per request: the batch header and CRC of every partition (synchronous,
`records.split_batches`); the records inside (`record_validation`), on the event loop
for small batches and in a small thread pool for large or compressed ones, so that a
decompression bomb never stalls other connections (then schema ids, on validating topics,
and a refused batch's dead-letter topic); then the appends, in request order.
The server handles a connection's requests one at a time, so awaiting the pool keeps
the order of a connection's produce requests (and of idempotent sequences), and the
pool's queue holds at most one job per connection.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import struct
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from contextplane import limits
from contextplane.broker import dead_letters
from contextplane.broker.configs import topic_config
from contextplane.broker.context import NO_RESPONSE, Reply, RequestContext, later
from contextplane.broker.handlers import produce_zoned
from contextplane.broker.handlers.current_leader import name_current_leaders
from contextplane.broker.internal_topics import AUDIT_TRAIL_TOPICS, is_internal
from contextplane.broker.loopshare import LoopShare, is_large
from contextplane.broker.schema_validation import check_schema_ids
from contextplane.broker.txn_verification import (
    Verified,
    checked,
    coordinated_elsewhere,
    retry_wait,
    verify_remote,
)
from contextplane.cluster.forwarder import from_live_peer
from contextplane.coordinators.transactions import unverified
from contextplane.errors import KafkaError, ProtocolError
from contextplane.java_numbers import stored_int
from contextplane.logsafe import escape
from contextplane.protocol.error_codes import ErrorCode
from contextplane.protocol.produce_response import CURRENT_LEADER_FROM, encode_produce_response
from contextplane.protocol.record_validation import RecordErrors, RecordPolicy, validate_records
from contextplane.protocol.records import BatchHeader, parse_header, split_batches
from contextplane.security.acls import ResourceType
from contextplane.storage.partition import PartitionLog

log = logging.getLogger(__name__)

TOPIC = ResourceType.TOPIC
ACK_WAIT_MIN_MS = 5_000  # the least a produce waits for its acknowledgements

_pool: ThreadPoolExecutor | None = None


def _validation_pool() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(
            max_workers=limits.RECORD_VALIDATION_THREADS, thread_name_prefix="record-validation"
        )
    return _pool


@dataclass(slots=True)
class _Batch:
    """One partition's batch on its way from the request to the log."""

    topic: str
    entry: dict[str, Any]  # its partition response
    partition: PartitionLog
    header: BatchHeader
    batch: memoryview
    policy: RecordPolicy
    append_time: bool
    error: KafkaError | None = field(default=None)
    # Set by the schema check on a refusal: batch index -> why (for the dead-letter topic).
    schema_refusals: dict[int, str] | None = field(default=None)
    routed: bool = field(default=False)  # written to the dead-letter topic instead


def _broker_writes(ctx: RequestContext, topic: str) -> bool:
    """Another broker's write of its audit records or read receipts (forwarder.py): a
    live peer's client id and CLUSTER_ACTION on the cluster granted to its principal
    (`from_live_peer`), as Kafka's inter-broker principal; every other write to an
    internal topic stays refused. (The audit sink
    keeps what a peer refused for its next round.)"""
    return topic in AUDIT_TRAIL_TOPICS and from_live_peer(ctx)


async def produce(ctx: RequestContext, request: Any) -> Reply:
    remote = produce_zoned.routed(ctx, request)
    if remote is not None:  # partitions led in other zones, written through this broker
        return await produce_zoned.produce(ctx, request, remote, produce_here)
    return await produce_here(ctx, request)


async def produce_here(ctx: RequestContext, request: Any) -> Reply:
    request_error = _request_error(request)
    await ctx.topics.find_missing(getattr(t, "name", None) for t in request.topic_data)
    # Storage back-pressure (WAL backlog, memory budget, full disk): throttle or refuse.
    admission = ctx.log.admission()
    if request_error is None and admission.refusal is not None:
        request_error = KafkaError(ErrorCode.kafka_storage_error, admission.refusal)
    record_bytes = _record_bytes(request.topic_data)
    # producer_byte_rate counts the request's record bytes (Kafka: the request's size).
    quota_ms = ctx.throttle(
        ctx.services.quotas.produce_throttle_ms(ctx.principal, ctx.header.client_id, record_bytes)
    )
    count_zone_bytes(ctx, record_bytes)
    tid: str | None = request.transactional_id
    remote: Verified | None = None  # verified by a coordinator on another broker
    if tid is not None and request_error is None and coordinated_elsewhere(ctx, tid):
        producer, wanted = transactional_partitions(ctx, request)
        if producer is not None:
            remote = await verify_remote(ctx, tid, producer, wanted, ctx.api_version >= 12)
    elif tid is not None and ctx.api_version >= 12 and request_error is None:
        request_error = await add_to_transaction(ctx, request)
    topics = []
    batches: list[_Batch] = []
    failed = False
    loop = asyncio.get_running_loop()
    share = LoopShare(loop)
    entries = 0
    for name, topic_id, partition_data in distinct_partitions(ctx, request.topic_data):
        partitions = []
        for data in partition_data:
            if share.due():
                await asyncio.sleep(0)
            entries += 1
            entry: dict[str, Any] = {
                "index": data.index,
                "error_code": ErrorCode.none,
                "base_offset": -1,
                "log_append_time": -1,
                "log_start_offset": -1,
                "record_errors": [],
                "error_message": None,
            }
            partitions.append(entry)
            try:
                if request_error is not None:
                    raise request_error
                if name is None:  # v13: an id no topic has
                    raise KafkaError(ErrorCode.unknown_topic_id)
                ctx.require(TOPIC, name)
                if is_internal(name) and not _broker_writes(ctx, name):
                    # Kafka: INVALID_TOPIC_EXCEPTION, and no message
                    entry["error_code"] = ErrorCode.invalid_topic_exception
                    failed = True
                    continue
                partition = ctx.log.partition(name, data.index)
                batches.append(
                    _checked_batch(ctx, name, entry, partition, data.records, tid, remote)
                )
            except KafkaError as exc:
                _reject(ctx, name or str(topic_id), entry, exc)
                failed = True
        topics.append({"name": name, "topic_id": topic_id, "partition_responses": partitions})
    await _validate_records(batches, ctx.now_ms())
    await check_schema_ids(ctx, batches, _validation_pool())
    await dead_letters.route(ctx, batches, _validation_pool(), request.timeout.total_seconds())
    pending: list[tuple[dict[str, Any], asyncio.Future[None]]] = []
    for item in batches:
        if share.due():
            await asyncio.sleep(0)
        if _append(ctx, item, pending) is not None:
            failed = True
    if request.acks == 0:
        if ctx.span is not None:
            _describe_span(ctx, topics, batches)
        if failed:
            # acks=0 has no response; closing the connection is Kafka's only way to tell
            # the producer that something it sent was rejected.
            raise ProtocolError("acks=0 produce rejected; closing the connection as Kafka does")
        return NO_RESPONSE

    # Every acknowledgement wait ends by the request's timeout (REQUEST_TIMED_OUT, as
    # Kafka's purgatory answers acks=all), floored because a write here waits for a disk
    # sync and its dirty mark where Kafka's leader waits for neither.
    wait_s = max(request.timeout.total_seconds(), ACK_WAIT_MIN_MS / 1000)
    deadline = loop.time() + wait_s

    async def respond() -> Any:
        rejected = failed
        # The wait for the WAL's group commit, a span of its own when traced.
        waiting = None
        if ctx.span is not None and pending:
            waiting = ctx.services.spans.child(  # type: ignore[union-attr]
                ctx.span, "acknowledgement wait", {"contextplane.partition_count": len(pending)}
            )
        for entry, durable in pending:
            try:
                if durable.done():  # usual once requests queue: no timer, no shield
                    durable.result()
                else:
                    async with asyncio.timeout_at(deadline):
                        await asyncio.shield(durable)
            except TimeoutError:
                entry.update(
                    error_code=ErrorCode.request_timed_out,
                    error_message="the write was not acknowledged within the request's timeout",
                    base_offset=-1,
                )
                durable.add_done_callback(_retrieve)
            except KafkaError as exc:  # fenced while the write was in flight
                entry.update(error_code=exc.code, error_message=exc.message, base_offset=-1)
                rejected = True
            except OSError as exc:
                entry.update(
                    error_code=ErrorCode.kafka_storage_error, error_message=str(exc), base_offset=-1
                )
        if waiting is not None:
            waiting.end()
        if ctx.span is not None:
            _describe_span(ctx, topics, batches)
        if admission.throttle_ms:
            # Delayed as well as reported (as Kafka did before KIP-219), so a client that
            # ignores throttle_time_ms is slowed all the same.
            await asyncio.sleep(admission.throttle_ms / 1000)
        throttle_ms = max(admission.throttle_ms, quota_ms)
        endpoints = _current_leaders(ctx, topics) if rejected else []
        if not is_large(entries):
            # Byte for byte kio's response, without building its entity on the loop.
            header = ctx.header
            return encode_produce_response(
                header.api_version, header.correlation_id, throttle_ms, topics, endpoints
            )
        reply = await ctx.large_reply(
            entries, throttle_time=throttle_ms, responses=topics, node_endpoints=endpoints
        )
        return reply.body

    if not pending and not admission.throttle_ms:
        return Reply(body=await respond())
    return later(respond())


def _describe_span(
    ctx: RequestContext, topics: list[dict[str, Any]], batches: list[_Batch]
) -> None:
    # Only when traced: request_spans imports OpenTelemetry.
    from contextplane.broker.request_spans import describe_produce, link_producers

    describe_produce(ctx.span, topics, sum(item.header.records_count for item in batches))
    link_producers(ctx.span, [item.batch for item in batches if not item.header.compression])


def _retrieve(durable: asyncio.Future[None]) -> None:
    """A write answered as timed out ends unobserved: its outcome is taken here."""
    if not durable.cancelled():
        durable.exception()


def _current_leaders(ctx: RequestContext, topics: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Produce v10+ (KIP-951): each NOT_LEADER_OR_FOLLOWER partition names its current
    leader; the NodeEndpoints of those named."""
    if ctx.api_version < CURRENT_LEADER_FROM:
        return []
    return name_current_leaders(
        ctx,
        ((t["name"], p["index"], p) for t in topics for p in t["partition_responses"]),
        (ErrorCode.not_leader_or_follower,),
    )


def count_zone_bytes(ctx: RequestContext, record_bytes: int) -> None:
    """The request's record bytes, by the client's zone (its client.id's: Produce carries
    no rack), whatever becomes of them: they crossed the wire."""
    connection = ctx.connection
    zone = connection.zone
    if zone is None:
        zone = connection.zone = ctx.services.stats.zones.for_client_id(ctx.header.client_id)
    zone.bytes_in += record_bytes


def _record_bytes(topic_data: Any) -> int:
    return sum(len(p.records or b"") for t in topic_data for p in t.partition_data)


def distinct_partitions(
    ctx: RequestContext, topic_data: Any
) -> list[tuple[str | None, Any, list[Any]]]:
    """A request's partition entries, one per topic-partition, grouped by topic: (name,
    id, entries). v13 names topics by id (KIP-516); the name of an unknown id is None.

    Kafka collects a Produce request into a map keyed by topic-partition: a partition
    listed more than once is appended once, with its last entry, and answered once.
    """
    by_id = ctx.api_version >= 13
    latest: dict[tuple[Any, int], Any] = {}
    names: dict[Any, tuple[str | None, Any]] = {}
    for topic, name in ctx.topics.names_of(topic_data, by_id):
        key = topic.topic_id if by_id else name
        names[key] = (name, getattr(topic, "topic_id", None))
        for data in topic.partition_data:
            latest[(key, data.index)] = data
    grouped: dict[Any, list[Any]] = {}
    for (key, _), data in latest.items():
        grouped.setdefault(key, []).append(data)
    return [(*names[key], entries) for key, entries in grouped.items()]


def _request_error(request: Any) -> KafkaError | None:
    if request.acks not in (-1, 0, 1):
        return KafkaError(ErrorCode.invalid_required_acks)
    return None


def _reject(ctx: RequestContext, topic: str, entry: dict[str, Any], exc: KafkaError) -> None:
    # Storage refusals are logged once per episode by the storage engine.
    # Authorization denials are audited by the pipeline.
    if exc.code not in (
        ErrorCode.unknown_topic_or_partition,
        ErrorCode.kafka_storage_error,
        ErrorCode.topic_authorization_failed,
    ):
        log.info(
            "produce to %s-%d from %s rejected: %s",
            escape(topic),
            entry["index"],
            ctx.peer,
            escape(exc),
        )
    # Per topic only for partitions hosted here: a made-up name must not add a series.
    hosted = (topic, entry["index"]) in ctx.log.partitions
    ctx.services.stats.produce_failed(topic if hosted else None)
    # Kafka's answer names no message for a topic or partition it does not have.
    unknown = exc.code in (ErrorCode.unknown_topic_or_partition, ErrorCode.unknown_topic_id)
    entry.update(error_code=exc.code, error_message=None if unknown else exc.message)
    if isinstance(exc, RecordErrors):
        entry["record_errors"] = [
            {"batch_index": index, "batch_index_error_message": message}
            for index, message in exc.record_errors
        ]


def _topic_config(ctx: RequestContext, configs: dict[str, str], name: str) -> str:
    return topic_config(configs, name, ctx.settings)


def _checked_batch(
    ctx: RequestContext,
    topic: str,
    entry: dict[str, Any],
    partition: PartitionLog,
    records: bytes | None,
    transactional_id: str | None,
    remote: Verified | None = None,
) -> _Batch:
    """The partition's one batch with its header and CRC checked (records not yet)."""
    configs = ctx.topics.topics()[topic].configs
    batch_bytes_max = stored_int(_topic_config(ctx, configs, "max.message.bytes"))
    batches = split_batches(records or b"", batch_bytes_max)
    if len(batches) != 1:
        raise KafkaError(
            ErrorCode.invalid_record,
            "Produce requests are only allowed to contain exactly one record batch per partition",
        )
    header, batch = batches[0]
    _check_transactional(ctx, transactional_id, topic, entry["index"], header, remote)
    policy = _record_policy(
        topic,
        entry["index"],
        _topic_config(ctx, configs, "message.timestamp.type"),
        ctx.settings.message_max_decompression_ratio,
        _topic_config(ctx, configs, "cleanup.policy"),
        _topic_config(ctx, configs, "message.timestamp.before.max.ms"),
        _topic_config(ctx, configs, "message.timestamp.after.max.ms"),
        batch_bytes_max,
    )
    append_time = policy.log_append_time
    return _Batch(topic, entry, partition, header, batch, policy, append_time)


@functools.lru_cache(maxsize=4096)
def _record_policy(
    topic: str,
    index: int,
    timestamp_type: str,
    ratio: int,
    cleanup_policy: str,
    before_max_ms: str,
    after_max_ms: str,
    batch_bytes_max: int,
) -> RecordPolicy:
    """A partition's record policy from its configs' texts (the same for every batch
    until a config changes: built once, not per request)."""
    return RecordPolicy(
        topic_partition=f"{topic}-{index}",
        compacted="compact" in cleanup_policy,
        log_append_time=timestamp_type == "LogAppendTime",
        timestamp_before_max_ms=stored_int(before_max_ms),
        timestamp_after_max_ms=stored_int(after_max_ms),
        decompressed_bytes_max=batch_bytes_max * ratio,
    )


async def add_to_transaction(ctx: RequestContext, request: Any) -> KafkaError | None:
    """Produce v12+ (transactions v2, KIP-890): the partitions of a transactional
    producer's batches join its transaction before they are verified, as Kafka's leader
    adds them with AddPartitionsToTxn v5. Partitions it may not write or that do not
    exist are left to the checks below, and so is a refused add (verification answers),
    except CONCURRENT_TRANSACTIONS: the previous transaction is still completing; the add
    is retried for up to 100 ms, then the whole request gets CONCURRENT_TRANSACTIONS, as
    Kafka 4.4's leader answers Produce v12+ (txn_verification.retry_wait)."""
    tid: str = request.transactional_id
    producer, wanted = transactional_partitions(ctx, request)
    missing = ctx.transactions.missing_partitions(tid, wanted)
    if producer is None or not missing:
        return None
    started = asyncio.get_running_loop().time()
    while True:
        try:
            await ctx.transactions.add_partitions(tid, producer[0], producer[1], missing, version=2)
        except KafkaError as exc:
            if exc.code != ErrorCode.concurrent_transactions:
                return None
            if not await retry_wait(started):
                return KafkaError(ErrorCode.concurrent_transactions)
        else:
            return None


def transactional_partitions(
    ctx: RequestContext, request: Any
) -> tuple[tuple[int, int] | None, list[tuple[str, int]]]:
    """(producer id and epoch, the partitions) of the request's transactional batches,
    leaving out those the batch checks answer (unknown, denied, internal, malformed)."""
    known = ctx.topics.topics()
    wanted: list[tuple[str, int]] = []
    producer: tuple[int, int] | None = None
    for topic, name in ctx.topics.names_of(request.topic_data, by_id=ctx.api_version >= 13):
        record = known.get(name) if name is not None else None
        if record is None or ctx.denied(TOPIC, record.name) or is_internal(record.name):
            continue
        for data in topic.partition_data:
            records = data.records
            if not records or not 0 <= data.index < record.partitions:
                continue
            try:
                header = parse_header(records)
            except (KafkaError, ValueError, struct.error):
                continue  # answered by the batch checks
            if header.is_transactional and not header.is_control:
                producer = (header.producer_id, header.producer_epoch)
                wanted.append((record.name, data.index))
    return producer, wanted


def _check_transactional(
    ctx: RequestContext,
    tid: str | None,
    topic: str,
    index: int,
    header: BatchHeader,
    remote: Verified | None = None,
) -> None:
    """Clients never write markers; a transactional batch must belong to its producer's
    ongoing transaction, which must include this partition (transaction verification)."""
    if header.is_control:
        raise KafkaError(
            ErrorCode.invalid_record, "Clients are not allowed to write control records"
        )
    if header.is_transactional:
        if tid is None:
            raise KafkaError(
                ErrorCode.invalid_txn_state, "a transactional batch needs a transactional id"
            )
        abortable = ctx.api_version >= 11  # Kafka's genericErrorSupported
        if remote is not None:
            missing = unverified(ErrorCode.not_coordinator)
            checked(remote.get((topic, index), missing), abortable)
            return
        ctx.transactions.verify_produce(
            tid,
            header.producer_id,
            header.producer_epoch,
            topic,
            index,
            abortable=abortable,
        )


async def _validate_records(batches: list[_Batch], now_ms: int) -> None:
    """Walk every batch's records; small ones here, the others in the pool (one job)."""
    deferred = [item for item in batches if not _validated_inline(item, now_ms)]
    if deferred:
        await asyncio.get_running_loop().run_in_executor(
            _validation_pool(), _validate_all, deferred, now_ms
        )


def _validated_inline(item: _Batch, now_ms: int) -> bool:
    """Validate `item` here if that is cheap; False if it must go to the pool.

    The walk costs per record, decompression per byte: a batch with few records is
    walked here, a compressed one only up to a small decompressed size (a bomb is
    handed to the pool after that much, and walked there from the start).
    """
    if item.header.records_count > limits.RECORD_VALIDATION_INLINE_RECORDS:
        return False
    policy = item.policy
    if item.header.compression:
        inline_bytes = min(policy.decompressed_bytes_max, limits.RECORD_VALIDATION_INLINE_BYTES)
        if inline_bytes < policy.decompressed_bytes_max:
            policy = _with_limit(policy, inline_bytes)
    try:
        validate_records(item.header, item.batch, policy, now_ms)
    except KafkaError as exc:
        if exc.code == ErrorCode.message_too_large and policy is not item.policy:
            return False
        item.error = exc
    return True


@functools.lru_cache(maxsize=4096)
def _with_limit(policy: RecordPolicy, decompressed_bytes_max: int) -> RecordPolicy:
    return RecordPolicy(
        policy.topic_partition,
        policy.compacted,
        policy.log_append_time,
        policy.timestamp_before_max_ms,
        policy.timestamp_after_max_ms,
        decompressed_bytes_max,
    )


def _validate_all(batches: list[_Batch], now_ms: int) -> None:
    for item in batches:
        try:
            validate_records(item.header, item.batch, item.policy, now_ms)
        except KafkaError as exc:
            item.error = exc


def _append(
    ctx: RequestContext,
    item: _Batch,
    pending: list[tuple[dict[str, Any], asyncio.Future[None]]],
) -> KafkaError | OSError | None:
    """Append a validated batch (or record its error); the error, if any."""
    entry = item.entry
    try:
        if item.error is not None:
            raise item.error
        if item.routed:  # durable in the dead-letter topic; no offset of this partition
            return None
        # The partition may have gone while the records were walked in the pool.
        if ctx.log.partition(item.topic, entry["index"]) is not item.partition:
            raise KafkaError(
                ErrorCode.unknown_topic_or_partition,
                "This server does not host this topic-partition.",
            )
        append_time = ctx.now_ms() if item.append_time else None
        result = ctx.log.append(item.partition, [(item.header, item.batch)], append_time)
    except KafkaError as exc:
        _reject(ctx, item.topic, entry, exc)
        return exc
    except OSError as exc:
        entry.update(error_code=ErrorCode.kafka_storage_error, error_message=str(exc))
        ctx.services.stats.produce_failed(item.topic)
        return exc
    ctx.services.stats.produced(item.topic, item.header.records_count, len(item.batch))
    item.partition.bytes_in += len(item.batch)
    entry["base_offset"] = result.base_offset
    entry["log_append_time"] = result.log_append_time
    entry["log_start_offset"] = item.partition.log_start_offset
    if result.durable is not None:
        pending.append((entry, result.durable))
    return None
