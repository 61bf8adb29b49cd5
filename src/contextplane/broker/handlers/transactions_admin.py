"""The admin side of transactions (what `kafka-transactions.sh` sends):
DescribeTransactions and ListTransactions from the transaction coordinator,
DescribeProducers from each partition's producer state, and WriteTxnMarkers, with
which an admin aborts a hanging transaction by writing its ABORT marker to the
partition (Kafka's Admin.abortTransaction).

Authorization as Kafka's KafkaApis (4.4): DescribeTransactions DESCRIBE on each
transactional id (and lists only the topics the caller may DESCRIBE); ListTransactions
shows only the ids the caller may DESCRIBE; DescribeProducers READ on each topic;
WriteTxnMarkers CLUSTER_ACTION on the cluster (authorization_txn.py).
"""

from __future__ import annotations

from typing import Any

from contextplane.broker.context import Reply, RequestContext
from contextplane.broker.txn_markers import write_marker
from contextplane.coordinators import txn_listing
from contextplane.errors import KafkaError
from contextplane.protocol.error_codes import ErrorCode
from contextplane.security.acls import Operation, ResourceType
from contextplane.storage.partition import PartitionLog

TXN = ResourceType.TRANSACTIONAL_ID
TOPIC = ResourceType.TOPIC


async def describe_transactions(ctx: RequestContext, request: Any) -> Reply:
    states = []
    for tid in request.transactional_ids:
        if ctx.denied(TXN, tid):
            states.append(txn_listing.denied(tid))
            continue
        refused = ctx.transactions.refused(tid)
        if refused is not None:  # another broker's shard (or one loading here)
            states.append(txn_listing.failed(tid, refused))
            continue
        entry = txn_listing.describe(tid, ctx.transactions.record(tid))
        entry["topics"] = [
            t for t in entry["topics"] if ctx.allowed(Operation.DESCRIBE, TOPIC, t["topic"])
        ]
        states.append(entry)
    return ctx.reply(throttle_time=ctx.throttle_ms, transaction_states=states)


async def list_transactions(ctx: RequestContext, request: Any) -> Reply:
    state_filters = list(request.state_filters)
    try:
        found = txn_listing.matching(
            ctx.transactions.records(),
            state_filters,
            list(request.producer_id_filters),
            getattr(request, "duration_filter", -1),
            getattr(request, "transactional_id_pattern", None),
            ctx.now_ms(),
        )
    except KafkaError as exc:
        return ctx.reply(
            throttle_time=ctx.throttle_ms,
            error_code=exc.code,
            unknown_state_filters=[],
            transaction_states=[],
        )
    return ctx.reply(
        throttle_time=ctx.throttle_ms,
        error_code=ErrorCode.none,
        unknown_state_filters=txn_listing.unknown_states(state_filters),
        transaction_states=[
            {
                "transactional_id": r.transactional_id,
                "producer_id": r.producer_id,
                "transaction_state": r.state,
            }
            for r in found
            if ctx.allowed(Operation.DESCRIBE, TXN, r.transactional_id)
        ],
    )


async def describe_producers(ctx: RequestContext, request: Any) -> Reply:
    topics = []
    for topic in request.topics:
        partitions = []
        for index in topic.partition_indexes:
            entry: dict[str, Any] = {
                "partition_index": index,
                "error_code": ErrorCode.none,
                "error_message": None,
                "active_producers": [],
            }
            partitions.append(entry)
            if ctx.denied(TOPIC, topic.name):
                entry["error_code"] = ErrorCode.topic_authorization_failed
                continue
            try:
                partition = ctx.log.partition(topic.name, index)
            except KafkaError as exc:
                entry["error_code"] = exc.code
                entry["error_message"] = exc.message
                continue
            entry["active_producers"] = active_producers(partition)
        topics.append({"name": topic.name, "partitions": partitions})
    return ctx.reply(throttle_time=ctx.throttle_ms, topics=topics)


def active_producers(partition: PartitionLog) -> list[dict[str, Any]]:
    """Every producer with state on the partition, with the first offset of its open
    transaction (-1: none), as Kafka's ProducerStateManager reports them."""
    open_txns = partition.transactions.open
    found = []
    for producer_id, entry in sorted(partition.producers.producers.items()):
        last = entry.batches[-1] if entry.batches else None
        opened = open_txns.get(producer_id)
        found.append(
            {
                "producer_id": producer_id,
                "producer_epoch": entry.epoch,
                "last_sequence": last.last_sequence if last else -1,
                "last_timestamp": last.max_timestamp if last else -1,
                # Markers are not tracked per producer: Kafka's value before any.
                "coordinator_epoch": -1,
                "current_txn_start_offset": opened.first_offset if opened else -1,
            }
        )
    return found


async def write_txn_markers(ctx: RequestContext, request: Any) -> Reply:
    results = []
    for marker in request.markers:
        topics = []
        for topic in marker.topics:
            partitions = []
            for index in topic.partition_indexes:
                code = ErrorCode.none
                try:
                    await write_marker(
                        ctx.log,
                        ctx.clock,
                        topic.name,
                        index,
                        marker.producer_id,
                        marker.producer_epoch,
                        bool(marker.transaction_result),
                        marker.coordinator_epoch,
                    )
                except KafkaError as exc:
                    code = exc.code
                partitions.append({"partition_index": index, "error_code": code})
            topics.append({"name": topic.name, "partitions": partitions})
        results.append({"producer_id": marker.producer_id, "topics": topics})
    return ctx.reply(markers=results)


def refuse_write_txn_markers(ctx: RequestContext, request: Any, error: ErrorCode) -> Reply:
    """Kafka's WriteTxnMarkersRequest.getErrorResponse: every partition gets the error."""
    return ctx.reply(
        markers=[
            {
                "producer_id": marker.producer_id,
                "topics": [
                    {
                        "name": topic.name,
                        "partitions": [
                            {"partition_index": index, "error_code": error}
                            for index in topic.partition_indexes
                        ],
                    }
                    for topic in marker.topics
                ],
            }
            for marker in request.markers
        ]
    )
