"""AddPartitionsToTxn v4-5: the batched broker-to-broker form (KIP-890). A partition
leader asks the transaction coordinator, for each of several transactions, to add
partitions to it or (VerifyOnly) whether they are already in it. Kafka authorizes the
whole request with CLUSTER_ACTION on the cluster (broker/authorization_txn.py), and no
per-transaction or per-topic ACL, as KafkaApis.handleAddPartitionsToTxnRequest does.

Per transaction: a partition that does not exist fails the transaction
(UNKNOWN_TOPIC_OR_PARTITION for it, OPERATION_NOT_ATTEMPTED for the others); otherwise
an add answers one error for all its partitions, and a verification one per partition
(TransactionCoordinator.handleVerifyPartitionsInTransaction).

Kafka answers every entry with the partitions of all entries of its transactional id, so
n entries naming one id cost n² answers. Here equal entries are decided once, and a
request whose answers would name more than PARTITIONS_PER_REQUEST_MAX partitions is
refused whole (INVALID_REQUEST): no broker sends one (Kafka bounds nothing here).
"""

from __future__ import annotations

from typing import Any

from contextplane import limits
from contextplane.broker.context import Reply, RequestContext
from contextplane.errors import KafkaError
from contextplane.protocol.error_codes import ErrorCode

Partition = tuple[str, int]


def _partitions_by_transaction(request: Any) -> dict[str, list[Partition]]:
    """Kafka's partitionsByTransaction: a transactional id named twice has the
    partitions of both entries."""
    found: dict[str, list[Partition]] = {}
    for transaction in request.transactions:
        wanted = found.setdefault(transaction.transactional_id, [])
        for topic in transaction.topics:
            wanted.extend((topic.name, index) for index in topic.partitions)
    return found


def _unknown(ctx: RequestContext, wanted: list[Partition]) -> dict[Partition, ErrorCode]:
    known = ctx.topics.topics()
    codes: dict[Partition, ErrorCode] = {}
    for name, index in wanted:
        record = known.get(name)
        if record is None or not 0 <= index < record.partitions:
            codes[(name, index)] = ErrorCode.unknown_topic_or_partition
    if codes:
        for key in wanted:
            codes.setdefault(key, ErrorCode.operation_not_attempted)
    return codes


async def _result(ctx: RequestContext, transaction: Any, wanted: list[Partition]) -> Any:
    tid = transaction.transactional_id
    codes = _unknown(ctx, wanted)
    if not codes and transaction.verify_only:
        codes = ctx.transactions.verify_partitions(
            tid, transaction.producer_id, transaction.producer_epoch, wanted
        )
    elif not codes:
        try:
            await ctx.transactions.add_partitions(
                tid,
                transaction.producer_id,
                transaction.producer_epoch,
                wanted,
                # Kafka's transactionVersionForAddPartitionsToTxn: v5 comes from a
                # transactions v2 producer's partition leader.
                version=2 if ctx.api_version >= 5 else 0,
            )
            code = ErrorCode.none
        except KafkaError as exc:
            code = exc.code
        codes = dict.fromkeys(wanted, code)
    by_topic: dict[str, list[dict[str, Any]]] = {}
    for (name, index), code in codes.items():
        by_topic.setdefault(name, []).append(
            {"partition_index": index, "partition_error_code": code}
        )
    return {
        "transactional_id": tid,
        "topic_results": [
            {"name": name, "results_by_partition": results} for name, results in by_topic.items()
        ],
    }


async def add_partitions_to_txns(ctx: RequestContext, request: Any) -> Reply:
    by_transaction = _partitions_by_transaction(request)
    answered = sum(len(by_transaction[t.transactional_id]) for t in request.transactions)
    if answered > limits.PARTITIONS_PER_REQUEST_MAX:
        return ctx.reply(
            throttle_time=ctx.throttle_ms,
            error_code=ErrorCode.invalid_request,
            results_by_transaction=[],
        )
    decided: dict[tuple[str, int, int, bool], Any] = {}
    results = []
    for transaction in request.transactions:
        key = (
            transaction.transactional_id,
            transaction.producer_id,
            transaction.producer_epoch,
            transaction.verify_only,
        )
        if key not in decided:
            wanted = by_transaction[transaction.transactional_id]
            decided[key] = await _result(ctx, transaction, wanted)
        results.append(decided[key])
    return ctx.reply(
        throttle_time=ctx.throttle_ms,
        error_code=ErrorCode.none,
        results_by_transaction=results,
    )
