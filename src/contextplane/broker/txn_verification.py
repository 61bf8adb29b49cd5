"""Transaction verification when another broker coordinates the transactional id
(KIP-890, RFC 0004 §3): the partition leader asks the coordinator with
AddPartitionsToTxn, as Kafka's leaders do (AddPartitionsToTxnManager), authorized there
by CLUSTER_ACTION.

Produce v0-11 (transactions v1: the client added the partitions itself) asks v4 with
`verify_only`; Produce v12+ (transactions v2: the leader adds them) asks v5 without it.
Only the first batch of a transaction on a partition pays the round trip: while the
producer has a transaction open on the partition under the batch's epoch (no marker
yet) its batches belong to it, as Kafka's leader skips verification for a partition
with an ongoing transaction of that producer and epoch.
The answers become the errors Kafka 4.4's leader answers (ReplicaManager
handleProduceAppend): a coordinator that cannot be reached (NETWORK_EXCEPTION), is not
known (COORDINATOR_NOT_AVAILABLE), loading or moved is the retriable
NOT_ENOUGH_REPLICAS naming it, and so is CONCURRENT_TRANSACTIONS before Produce v12;
from v12 the leader asks again for up to 100 ms, then answers CONCURRENT_TRANSACTIONS
itself (Kafka's maybeRetryOnConcurrentTransactions; those clients retry it).

TxnOffsetCommit v5+ (transactions v2) at a group coordinator whose transactional id
another broker coordinates adds the group's `__consumer_offsets` partition there the
same way (v5), as Kafka's group coordinator does before it writes transactional offsets
(CoordinatorPartitionWriter.maybeStartTransactionVerification).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from contextplane.broker.context import RequestContext
from contextplane.coordinators.transactions import unverified
from contextplane.coordinators.txn_shards import TXN_STATE_TOPIC
from contextplane.errors import KafkaError
from contextplane.protocol.error_codes import ErrorCode
from contextplane.protocol.offsets_records import OFFSETS_TOPIC, partition_for

log = logging.getLogger(__name__)

ADD_PARTITIONS_TO_TXN_KEY = 24
Partition = tuple[str, int]
# (topic, partition) -> the error its batch gets (None: verified).
Verified = dict[Partition, KafkaError | None]
# Kafka's add.partitions.to.txn.retry.backoff.ms and .backoff.max.ms defaults (static
# broker configs there; capped by request.timeout.ms, which is longer).
ADD_RETRY_BACKOFF_S, ADD_RETRY_MAX_S = 0.020, 0.100
# Kafka's leader answers these NOT_ENOUGH_REPLICAS: retriable, and no metadata refresh.
_UNVERIFIED = frozenset(
    {
        ErrorCode.network_exception,
        ErrorCode.coordinator_load_in_progress,
        ErrorCode.coordinator_not_available,
        ErrorCode.not_coordinator,
    }
)
# What Kafka's group coordinator answers TxnOffsetCommit for a failed verification
# (CoordinatorOperationExceptionHelper); other errors are answered as they are.
_GROUP_ERRORS = {
    ErrorCode.network_exception: ErrorCode.coordinator_load_in_progress,
    ErrorCode.unknown_topic_or_partition: ErrorCode.coordinator_not_available,
    ErrorCode.not_enough_replicas: ErrorCode.coordinator_not_available,
    ErrorCode.request_timed_out: ErrorCode.coordinator_not_available,
    ErrorCode.not_leader_or_follower: ErrorCode.not_coordinator,
}


async def retry_wait(started: float) -> bool:
    """Transactions v2 (Produce v12+): a partition the coordinator cannot add yet
    (CONCURRENT_TRANSACTIONS: the previous transaction's markers are being written) is
    asked again after `ADD_RETRY_BACKOFF_S` while less than `ADD_RETRY_MAX_S` passed
    since `started` (loop time), as Kafka 4.4's leader retries before it answers
    CONCURRENT_TRANSACTIONS. False: answer now."""
    if asyncio.get_running_loop().time() - started >= ADD_RETRY_MAX_S:
        return False
    await asyncio.sleep(ADD_RETRY_BACKOFF_S)
    return True


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
    wanted = [p for p in partitions if not _open_here(ctx, p, producer)]
    verified: Verified = dict.fromkeys(partitions)
    if not wanted:
        return verified
    started = asyncio.get_running_loop().time()
    codes = await _asked(ctx, tid, producer, wanted, add)
    if add:
        while (
            busy := [p for p in wanted if codes.get(p) == ErrorCode.concurrent_transactions]
        ) and (await retry_wait(started)):
            codes.update(await _asked(ctx, tid, producer, busy, add))
    for partition in wanted:
        code = codes.get(partition, ErrorCode.unknown_server_error)
        verified[partition] = produce_error(code, add)
    return verified


def _open_here(ctx: RequestContext, partition: Partition, producer: tuple[int, int]) -> bool:
    """Has the producer a transaction open on the partition under this epoch (Kafka's
    UnifiedLog.hasOngoingTransaction(producerId, producerEpoch))? One of an earlier
    epoch is the previous transaction waiting for its marker (transactions v2 bumps the
    epoch at every end): the batch is verified, not folded into it."""
    log_ = ctx.log.partitions.get(partition)
    if log_ is None or not log_.transactions.in_transaction(producer[0]):
        return False
    entry = log_.producers.producers.get(producer[0])
    return entry is not None and entry.epoch == producer[1]


def group_shard(ctx: RequestContext, group_id: str) -> int:
    """The group's `__consumer_offsets` partition (-1: the topic does not exist)."""
    topic = ctx.topics.topics().get(OFFSETS_TOPIC)
    return partition_for(group_id, topic.partitions) if topic is not None else -1


async def add_group_remote(
    ctx: RequestContext, tid: str, producer: tuple[int, int], group_id: str
) -> int:
    """TxnOffsetCommit v5+ (transactions v2) at a group coordinator whose transactional
    id another broker coordinates: the group's `__consumer_offsets` partition joins the
    transaction there (AddPartitionsToTxn v5, CLUSTER_ACTION, as Kafka's group
    coordinator asks); returns that partition. Raises the error Kafka's group
    coordinator answers (an unreachable coordinator COORDINATOR_LOAD_IN_PROGRESS, an
    unknown one COORDINATOR_NOT_AVAILABLE: the client retries)."""
    shard = group_shard(ctx, group_id)
    if shard < 0:
        raise KafkaError(ErrorCode.coordinator_not_available)
    partition = (OFFSETS_TOPIC, shard)
    code = (await _asked(ctx, tid, producer, [partition], True)).get(
        partition, ErrorCode.unknown_server_error
    )
    if code == ErrorCode.producer_fenced:
        code = ErrorCode.invalid_producer_epoch  # AddPartitionsToTxnManager's mapping
    if code != ErrorCode.none:
        raise KafkaError(_GROUP_ERRORS.get(code, code))
    return shard


def _coordinator_node(ctx: RequestContext, tid: str) -> int:
    """The broker coordinating `tid`, when it is another live one."""
    topic = ctx.topics.topics().get(TXN_STATE_TOPIC)
    if ctx.cluster.peers is None or topic is None:
        raise KafkaError(ErrorCode.coordinator_not_available)
    node, _ = ctx.cluster.leaders.of(TXN_STATE_TOPIC, partition_for(tid, topic.partitions))
    if node in (-1, ctx.cluster.node_id):
        raise KafkaError(ErrorCode.coordinator_not_available)
    return node


async def _asked(
    ctx: RequestContext,
    tid: str,
    producer: tuple[int, int],
    wanted: list[Partition],
    add: bool,
) -> dict[Partition, ErrorCode]:
    """The coordinator's answer per partition, or the error Kafka's
    AddPartitionsToTxnManager gives them all: COORDINATOR_NOT_AVAILABLE with no
    coordinator known, NETWORK_EXCEPTION when it cannot be reached."""
    by_topic: dict[str, list[int]] = {}
    for name, index in wanted:
        by_topic.setdefault(name, []).append(index)
    try:
        answer = await _request(ctx, tid, producer, by_topic, add)
    except KafkaError as exc:
        log.info("verifying %r at its coordinator: %s", tid, exc.code.name.upper())
        return dict.fromkeys(wanted, exc.code)
    except OSError as exc:
        log.info("verifying %r at its coordinator failed: %r", tid, exc)
        return dict.fromkeys(wanted, ErrorCode.network_exception)
    if answer.error_code:
        # AddPartitionsToTxnManager: a broker refused CLUSTER_ACTION is INVALID_TXN_STATE.
        code = ErrorCode(answer.error_code)
        if code == ErrorCode.cluster_authorization_failed:
            code = ErrorCode.invalid_txn_state
        return dict.fromkeys(wanted, code)
    codes: dict[Partition, ErrorCode] = {}
    for result in answer.results_by_transaction:
        for topic_result in result.topic_results:
            for p in topic_result.results_by_partition:
                codes[(topic_result.name, p.partition_index)] = ErrorCode(p.partition_error_code)
    return codes


async def _request(
    ctx: RequestContext,
    tid: str,
    producer: tuple[int, int],
    by_topic: dict[str, list[int]],
    add: bool,
) -> Any:
    """AddPartitionsToTxn to `tid`'s coordinator: v5 adding, else v4 VerifyOnly."""
    return await ctx.cluster.peers.request(  # type: ignore[union-attr]
        _coordinator_node(ctx, tid),
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


def produce_error(code: ErrorCode, add: bool) -> KafkaError | None:
    """The produce error for a coordinator's answer, as Kafka 4.4's leader maps it
    (`add`: Produce v12+, whose clients retry CONCURRENT_TRANSACTIONS)."""
    if code == ErrorCode.none:
        return None
    if code == ErrorCode.producer_fenced:
        return KafkaError(ErrorCode.invalid_producer_epoch)
    if code in (ErrorCode.transaction_abortable, ErrorCode.invalid_txn_state):
        return KafkaError(code, "Partition was not added to the transaction")
    if code in _UNVERIFIED or (code == ErrorCode.concurrent_transactions and not add):
        return unverified(code)
    return KafkaError(code)


def checked(error: KafkaError | None, abortable: bool) -> None:
    """Raise a remote verification's error for one batch (Produce v11+: `abortable`)."""
    if error is None:
        return
    if error.code == ErrorCode.transaction_abortable and not abortable:
        raise KafkaError(ErrorCode.invalid_txn_state, error.message)
    raise error
