"""The transactional producer's APIs: InitProducerId with a transactional.id,
AddPartitionsToTxn (v0-3, the client's versions; v4-5, the brokers' batched form, in
transactions_batch.py), AddOffsetsToTxn, EndTxn and TxnOffsetCommit (v6 names topics by
id, KIP-1319). Thin: each asks the transaction coordinator (`ctx.transactions`).

KIP-588: from InitProducerId v4, AddPartitionsToTxn v2, AddOffsetsToTxn v2, EndTxn v2
and TxnOffsetCommit v3 a fenced producer gets PRODUCER_FENCED; older versions get
INVALID_PRODUCER_EPOCH, as Kafka maps it.
"""

from __future__ import annotations

from typing import Any

from contextplane import limits
from contextplane.broker.context import Reply, RequestContext
from contextplane.broker.handlers.transactions_batch import add_partitions_to_txns
from contextplane.broker.txn_verification import add_group_remote, coordinated_elsewhere
from contextplane.errors import KafkaError
from contextplane.metadata.records import OffsetRow
from contextplane.protocol.error_codes import ErrorCode
from contextplane.security.acls import ResourceType

_FENCED_FROM = {22: 4, 24: 2, 25: 2, 26: 2, 28: 3}  # api key -> first version with it


def _code(ctx: RequestContext, exc: KafkaError) -> ErrorCode:
    if exc.code == ErrorCode.producer_fenced and ctx.api_version < _FENCED_FROM.get(
        ctx.header.api_key, 0
    ):
        return ErrorCode.invalid_producer_epoch
    return exc.code


def _ms(value: Any) -> int:
    seconds = getattr(value, "total_seconds", None)
    return int(seconds() * 1000) if seconds is not None else int(value)


async def init_transactional_producer(ctx: RequestContext, request: Any) -> Reply:
    try:
        producer_id, epoch = await ctx.transactions.init_producer(
            request.transactional_id,
            _ms(request.transaction_timeout),
            getattr(request, "producer_id", -1),
            getattr(request, "producer_epoch", -1),
        )
    except KafkaError as exc:
        return ctx.reply(
            throttle_time=ctx.throttle_ms,
            error_code=_code(ctx, exc),
            producer_id=-1,
            producer_epoch=-1,
        )
    return ctx.reply(
        throttle_time=ctx.throttle_ms,
        error_code=ErrorCode.none,
        producer_id=producer_id,
        producer_epoch=epoch,
    )


async def add_partitions_to_txn(ctx: RequestContext, request: Any) -> Reply:
    if ctx.api_version >= 4:
        return await add_partitions_to_txns(ctx, request)
    tid = request.v3_and_below_transactional_id
    wanted: list[tuple[str, int]] = []
    codes: dict[tuple[str, int], ErrorCode] = {}
    known = ctx.topics.topics()
    for topic in request.v3_and_below_topics:
        for index in topic.partitions:
            key = (topic.name, index)
            wanted.append(key)
            record = known.get(topic.name)
            if ctx.denied(ResourceType.TOPIC, topic.name):
                codes[key] = ErrorCode.topic_authorization_failed
            elif record is None or not 0 <= index < record.partitions:
                codes[key] = ErrorCode.unknown_topic_or_partition
    if codes:
        # Kafka: the partitions at fault get their error, the others OPERATION_NOT_ATTEMPTED.
        for key in wanted:
            codes.setdefault(key, ErrorCode.operation_not_attempted)
    else:
        try:
            await ctx.transactions.add_partitions(
                tid,
                request.v3_and_below_producer_id,
                request.v3_and_below_producer_epoch,
                wanted,
            )
            code = ErrorCode.none
        except KafkaError as exc:
            code = _code(ctx, exc)
        codes = dict.fromkeys(wanted, code)
    by_topic: dict[str, list[dict[str, Any]]] = {}
    for (name, index), code in codes.items():
        by_topic.setdefault(name, []).append(
            {"partition_index": index, "partition_error_code": code}
        )
    return ctx.reply(
        throttle_time=ctx.throttle_ms,
        results_by_topic_v3_and_below=[
            {"name": name, "results_by_partition": results} for name, results in by_topic.items()
        ],
    )


async def add_offsets_to_txn(ctx: RequestContext, request: Any) -> Reply:
    code = ErrorCode.none
    if ctx.denied(ResourceType.GROUP, request.group_id):
        code = ErrorCode.group_authorization_failed
    else:
        try:
            await ctx.transactions.add_offsets(
                request.transactional_id,
                request.producer_id,
                request.producer_epoch,
                request.group_id,
            )
        except KafkaError as exc:
            code = _code(ctx, exc)
    return ctx.reply(throttle_time=ctx.throttle_ms, error_code=code)


async def end_txn(ctx: RequestContext, request: Any) -> Reply:
    code = ErrorCode.none
    producer_id, epoch = -1, -1
    try:
        producer_id, epoch = await ctx.transactions.end_transaction(
            request.transactional_id,
            request.producer_id,
            request.producer_epoch,
            bool(request.committed),
            bump=ctx.api_version >= 5,  # KIP-890: transactions v2 bump every epoch
        )
    except KafkaError as exc:
        code = _code(ctx, exc)
    return ctx.reply(
        throttle_time=ctx.throttle_ms,
        error_code=code,
        producer_id=producer_id,
        producer_epoch=epoch,
    )


async def txn_offset_commit(ctx: RequestContext, request: Any) -> Reply:
    await ctx.topics.find_missing(getattr(topic, "name", None) for topic in request.topics)
    known = ctx.topics.topics()
    rows: list[OffsetRow] = []
    results: list[dict[str, Any]] = []
    slots: list[dict[str, Any]] = []
    group_code = (
        ErrorCode.group_authorization_failed
        if ctx.denied(ResourceType.GROUP, request.group_id)
        else ErrorCode.none
    )
    for topic, name in ctx.topics.names_of(request.topics, by_id=ctx.api_version >= 6):
        out: list[dict[str, Any]] = []
        results.append(
            {"name": name, "topic_id": getattr(topic, "topic_id", None), "partitions": out}
        )
        record = known.get(name) if name is not None else None
        for partition in topic.partitions:
            slot = {"partition_index": partition.partition_index, "error_code": group_code}
            out.append(slot)
            if group_code != ErrorCode.none:
                continue
            if name is None:  # v6: an id no topic has (Kafka answers before authorizing)
                slot["error_code"] = ErrorCode.unknown_topic_id
                continue
            if ctx.denied(ResourceType.TOPIC, name):
                slot["error_code"] = ErrorCode.topic_authorization_failed
                continue
            if record is None or not 0 <= partition.partition_index < record.partitions:
                slot["error_code"] = ErrorCode.unknown_topic_or_partition
                continue
            metadata = partition.committed_metadata
            if metadata is not None and len(metadata) > limits.OFFSET_METADATA_BYTES_MAX:
                # offset.metadata.max.bytes, as OffsetCommit and Kafka's
                # OffsetMetadataManager.commitTransactionalOffset apply it per partition.
                slot["error_code"] = ErrorCode.offset_metadata_too_large
                continue
            rows.append(
                OffsetRow(
                    name,
                    partition.partition_index,
                    partition.committed_offset,
                    getattr(partition, "committed_leader_epoch", -1),
                    partition.committed_metadata,
                )
            )
            slots.append(slot)
    if rows:
        try:
            adds_group = ctx.api_version >= 5  # transactions v2: AddOffsetsToTxn's job too
            shard = -1
            if adds_group and coordinated_elsewhere(ctx, request.transactional_id):
                producer = (request.producer_id, request.producer_epoch)
                tid, group_id = request.transactional_id, request.group_id
                shard = await add_group_remote(ctx, tid, producer, group_id)
                adds_group = False
            await ctx.transactions.txn_offset_commit(
                request.transactional_id,
                request.group_id,
                request.producer_id,
                request.producer_epoch,
                rows,
                # v3+ names the member (KIP-447); older versions commit as a non-member.
                lambda: ctx.groups.validate_txn_offset_commit(
                    request.group_id,
                    getattr(request, "member_id", ""),
                    getattr(request, "group_instance_id", None),
                    getattr(request, "generation_id", -1),
                    ctx.api_version,
                ),
                adds_group=adds_group,
                group_shard=shard,
            )
        except KafkaError as exc:
            for slot in slots:
                slot["error_code"] = _code(ctx, exc)
    return ctx.reply(throttle_time=ctx.throttle_ms, topics=results)
