"""Transaction verification when another broker coordinates the transactional id
(KIP-890, RFC 0004 §3): the partition leader asks the coordinator with
AddPartitionsToTxn, as Kafka's leaders do.

Produce v0-11 (transactions v1: the client added the partitions itself) asks v4 with
`verify_only`; Produce v12+ (transactions v2: the leader adds them) asks v5 without it.
Only the first batch of a transaction on a partition pays the round trip: while the
producer has a transaction open on the partition (no marker yet) its batches belong to
it, as Kafka's leader skips verification for a partition with an ongoing transaction.
The answers become the errors the local coordinator's checks raise
(`TransactionCoordinator.verify_produce`); a coordinator that cannot be reached, or is
not the coordinator any more, is Kafka's retriable NOT_ENOUGH_REPLICAS.
"""

from __future__ import annotations

import logging
from typing import Any

from contextplane.broker.context import RequestContext
from contextplane.coordinators.transactions import unverified
from contextplane.coordinators.txn_shards import TXN_STATE_TOPIC
from contextplane.errors import KafkaError
from contextplane.protocol.error_codes import ErrorCode
from contextplane.protocol.offsets_records import partition_for

log = logging.getLogger(__name__)

ADD_PARTITIONS_TO_TXN_KEY = 24
ADD_OFFSETS_TO_TXN_KEY = 25
Partition = tuple[str, int]
# (topic, partition) -> the error its batch gets (None: verified).
Verified = dict[Partition, KafkaError | None]


def coordinated_elsewhere(ctx: RequestContext, tid: str) -> bool:
    """Is `tid` coordinated by another broker (its shard not led here)?"""
    return ctx.cluster.peers is not None and ctx.transactions.refused(tid) is not None


async def verify_remote(
    ctx: RequestContext,
    tid: str,
    producer: tuple[int, int],
    partitions: list[Partition],
    add: bool,
) -> Verified:
    """Each partition's verification at the transaction's coordinator on another broker
    (`add`: transactions v2, the partitions are added to the transaction)."""
    wanted = [p for p in partitions if not _open_here(ctx, p, producer[0])]
    verified: Verified = dict.fromkeys(partitions)
    if not wanted:
        return verified
    try:
        codes = await _ask(ctx, tid, producer, wanted, add)
    except (KafkaError, OSError) as exc:
        log.info("verifying %r at its coordinator failed: %r", tid, exc)
        codes = dict.fromkeys(wanted, ErrorCode.not_coordinator)
    for partition in wanted:
        verified[partition] = _error(codes.get(partition, ErrorCode.unknown_server_error))
    return verified


def _open_here(ctx: RequestContext, partition: Partition, producer_id: int) -> bool:
    log_ = ctx.log.partitions.get(partition)
    return log_ is not None and log_.transactions.in_transaction(producer_id)


async def add_group_remote(
    ctx: RequestContext, tid: str, producer: tuple[int, int], group_id: str
) -> None:
    """TxnOffsetCommit v5+ (transactions v2) at a group coordinator whose transactional
    id another broker coordinates: the group joins the transaction there, with
    AddOffsetsToTxn, as the client would have sent it; raises the coordinator's error
    (COORDINATOR_NOT_AVAILABLE when it cannot be asked: the client retries)."""
    try:
        node = _coordinator_node(ctx, tid)
        answer: Any = await ctx.cluster.peers.request(  # type: ignore[union-attr]
            node,
            ADD_OFFSETS_TO_TXN_KEY,
            4,
            transactional_id=tid,
            producer_id=producer[0],
            producer_epoch=producer[1],
            group_id=group_id,
        )
    except (KafkaError, OSError) as exc:
        raise KafkaError(ErrorCode.coordinator_not_available, str(exc)) from exc
    if answer.error_code:
        raise KafkaError(ErrorCode(answer.error_code))


def _coordinator_node(ctx: RequestContext, tid: str) -> int:
    """The broker coordinating `tid`, when it is another live one."""
    topic = ctx.topics.topics().get(TXN_STATE_TOPIC)
    if ctx.cluster.peers is None or topic is None:
        raise KafkaError(ErrorCode.coordinator_not_available)
    node, _ = ctx.cluster.leaders.of(TXN_STATE_TOPIC, partition_for(tid, topic.partitions))
    if node in (-1, ctx.cluster.node_id):
        raise KafkaError(ErrorCode.coordinator_not_available)
    return node


async def _ask(
    ctx: RequestContext,
    tid: str,
    producer: tuple[int, int],
    wanted: list[Partition],
    add: bool,
) -> dict[Partition, ErrorCode]:
    node = _coordinator_node(ctx, tid)
    by_topic: dict[str, list[int]] = {}
    for name, index in wanted:
        by_topic.setdefault(name, []).append(index)
    answer: Any = await ctx.cluster.peers.request(  # type: ignore[union-attr]
        node,
        ADD_PARTITIONS_TO_TXN_KEY,
        5 if add else 4,
        transactions=[
            {
                "transactional_id": tid,
                "producer_id": producer[0],
                "producer_epoch": producer[1],
                "verify_only": not add,
                "topics": [{"name": n, "partitions": p} for n, p in by_topic.items()],
            }
        ],
    )
    if answer.error_code:
        return dict.fromkeys(wanted, ErrorCode(answer.error_code))
    codes: dict[Partition, ErrorCode] = {}
    for result in answer.results_by_transaction:
        for topic_result in result.topic_results:
            for p in topic_result.results_by_partition:
                codes[(topic_result.name, p.partition_index)] = ErrorCode(p.partition_error_code)
    return codes


def _error(code: ErrorCode) -> KafkaError | None:
    """The produce error for a coordinator's answer (as `verify_produce` raises them)."""
    if code == ErrorCode.none:
        return None
    if code == ErrorCode.producer_fenced:
        return KafkaError(ErrorCode.invalid_producer_epoch)
    if code in (ErrorCode.invalid_producer_id_mapping, ErrorCode.invalid_producer_epoch):
        return KafkaError(code)
    if code in (ErrorCode.transaction_abortable, ErrorCode.invalid_txn_state):
        return KafkaError(code, "Partition was not added to the transaction")
    return unverified(code)


def checked(error: KafkaError | None, abortable: bool) -> None:
    """Raise a remote verification's error for one batch (Produce v11+: `abortable`)."""
    if error is None:
        return
    if error.code == ErrorCode.transaction_abortable and not abortable:
        raise KafkaError(ErrorCode.invalid_txn_state, error.message)
    raise error
