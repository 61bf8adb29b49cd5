"""What the transactional producer's APIs need authorized (Kafka's KafkaApis, 4.4):
WRITE on the transactional id for each (the whole request, answered with
TRANSACTIONAL_ID_AUTHORIZATION_FAILED); AddPartitionsToTxn WRITE on each topic (v4-5,
the brokers' batched form: CLUSTER_ACTION on the cluster instead, nothing else);
AddOffsetsToTxn READ on the group; TxnOffsetCommit READ on the group and each topic.
The handlers answer the per-resource needs (broker/handlers/transactions.py).
The admin APIs: DescribeTransactions DESCRIBE on each transactional id (topics
filtered by DESCRIBE); ListTransactions filtered by DESCRIBE on the id;
DescribeProducers READ on each topic; WriteTxnMarkers CLUSTER_ACTION on the cluster."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from contextplane.broker.authorization import (
    CLUSTER,
    GROUP,
    TOPIC,
    TXN,
    Gate,
    Need,
    Needs,
    Op,
    topic_names,
)
from contextplane.protocol.error_codes import ErrorCode
from contextplane.security.acls import CLUSTER_NAME
from contextplane.security.authorizer import Action

if TYPE_CHECKING:
    from contextplane.broker.context import Reply, RequestContext


def _txn_gate(tid: str) -> Gate:
    return Gate((Action(Op.WRITE, TXN, tid),), ErrorCode.transactional_id_authorization_failed)


def add_partitions_to_txn(ctx: RequestContext, request: Any) -> Needs:
    if ctx.api_version >= 4:  # the brokers' batched form: CLUSTER_ACTION only
        return Needs(gate=_cluster_action_gate())
    topics = dict.fromkeys(t.name for t in request.v3_and_below_topics)
    return Needs(
        gate=_txn_gate(request.v3_and_below_transactional_id),
        resources=[Need(Action(Op.WRITE, TOPIC, name)) for name in topics],
    )


def add_offsets_to_txn(ctx: RequestContext, request: Any) -> Needs:
    return Needs(
        gate=_txn_gate(request.transactional_id),
        resources=[Need(Action(Op.READ, GROUP, request.group_id))],
    )


def end_txn(ctx: RequestContext, request: Any) -> Needs:
    return Needs(gate=_txn_gate(request.transactional_id))


def txn_offset_commit(ctx: RequestContext, request: Any) -> Needs:
    """v6 names topics by id (KIP-1319)."""
    names = topic_names(ctx, request.topics, by_id=ctx.api_version >= 6)
    return Needs(
        gate=_txn_gate(request.transactional_id),
        resources=[
            Need(Action(Op.READ, GROUP, request.group_id)),
            *(Need(Action(Op.READ, TOPIC, name)) for name in dict.fromkeys(names) if name),
        ],
    )


def refuse_add_partitions(ctx: RequestContext, request: Any, error: ErrorCode) -> Reply:
    if ctx.api_version >= 4:  # Kafka's getErrorResponse: the top-level error only
        return ctx.reply(throttle_time=ctx.throttle_ms, error_code=error)
    return ctx.reply(
        throttle_time=ctx.throttle_ms,
        results_by_topic_v3_and_below=[
            {
                "name": t.name,
                "results_by_partition": [
                    {"partition_index": p, "partition_error_code": error} for p in t.partitions
                ],
            }
            for t in request.v3_and_below_topics
        ],
    )


# -- the admin APIs (broker/handlers/transactions_admin.py) -----------------------------


def describe_transactions(ctx: RequestContext, request: Any) -> Needs:
    """DESCRIBE on each id; the topics of a transaction are listed only with DESCRIBE on
    them (asked quietly, as Kafka filters them)."""
    ids = dict.fromkeys(request.transactional_ids)
    topics: dict[str, None] = {}
    for tid in ids:
        record = ctx.transactions.record(tid)
        if record is not None:
            topics.update(dict.fromkeys(topic for topic, _ in record.partitions))
    return Needs(
        resources=[Need(Action(Op.DESCRIBE, TXN, tid)) for tid in ids],
        quiet=[Action(Op.DESCRIBE, TOPIC, topic) for topic in topics],
    )


def list_transactions(ctx: RequestContext, request: Any) -> Needs:
    """Only the ids the caller may DESCRIBE are listed, without an error."""
    return Needs(
        quiet=[Action(Op.DESCRIBE, TXN, r.transactional_id) for r in ctx.transactions.records()]
    )


def describe_producers(ctx: RequestContext, request: Any) -> Needs:
    names = dict.fromkeys(t.name for t in request.topics)
    return Needs(resources=[Need(Action(Op.READ, TOPIC, name)) for name in names])


def _cluster_action_gate() -> Gate:
    return Gate(
        (Action(Op.CLUSTER_ACTION, CLUSTER, CLUSTER_NAME),), ErrorCode.cluster_authorization_failed
    )


def write_txn_markers(ctx: RequestContext, request: Any) -> Needs:
    return Needs(gate=_cluster_action_gate())
