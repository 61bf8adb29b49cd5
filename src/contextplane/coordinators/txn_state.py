"""The transaction coordinator's state machine, pure: Kafka's TransactionState names and
the transitions Kafka allows between them (TransactionState.validPreviousStates), and
the decisions each request makes from a transactional.id's state. No I/O and no clock:
`coordinators/transactions.py` stores each transition and writes the markers.
"""

from __future__ import annotations

import dataclasses
from enum import StrEnum

from contextplane import limits
from contextplane.errors import KafkaError
from contextplane.metadata.records import TransactionRecord
from contextplane.protocol.error_codes import ErrorCode


class TxnState(StrEnum):
    EMPTY = "Empty"
    ONGOING = "Ongoing"
    PREPARE_COMMIT = "PrepareCommit"
    PREPARE_ABORT = "PrepareAbort"
    COMPLETE_COMMIT = "CompleteCommit"
    COMPLETE_ABORT = "CompleteAbort"
    DEAD = "Dead"
    PREPARE_EPOCH_FENCE = "PrepareEpochFence"


S = TxnState
_COMPLETE = (S.EMPTY, S.COMPLETE_COMMIT, S.COMPLETE_ABORT)
# Kafka's TransactionState.validPreviousStates.
VALID_PREVIOUS: dict[TxnState, tuple[TxnState, ...]] = {
    S.EMPTY: _COMPLETE,
    S.ONGOING: (S.ONGOING, *_COMPLETE),
    S.PREPARE_COMMIT: (S.ONGOING,),
    S.PREPARE_ABORT: (S.ONGOING, S.PREPARE_EPOCH_FENCE, *_COMPLETE),
    S.COMPLETE_COMMIT: (S.PREPARE_COMMIT,),
    S.COMPLETE_ABORT: (S.PREPARE_ABORT,),
    S.DEAD: _COMPLETE,
    S.PREPARE_EPOCH_FENCE: (S.ONGOING,),
}


class IllegalTransition(RuntimeError):
    """A state change Kafka's transaction state machine does not allow."""


def state_of(record: TransactionRecord) -> TxnState:
    return TxnState(record.state)


def transition(
    record: TransactionRecord, to: TxnState, now_ms: int, **changes: object
) -> TransactionRecord:
    """A copy of `record` in state `to` (with `changes`); IllegalTransition if Kafka
    would not allow it."""
    current = state_of(record)
    if current not in VALID_PREVIOUS[to]:
        raise IllegalTransition(
            f"transactional id {record.transactional_id!r}: {current.value} -> {to.value}"
        )
    updated = dataclasses.replace(
        record,
        state=to.value,
        update_ms=now_ms,
        partitions=dict(record.partitions),
        groups=set(record.groups),
    )
    for name, value in changes.items():
        setattr(updated, name, value)
    return updated


def producer_id_not_assigned() -> KafkaError:
    return KafkaError(
        ErrorCode.invalid_producer_id_mapping,
        "The producer attempted to use a producer id which is not currently assigned to "
        "its transactional id.",
    )


def producer_fenced() -> KafkaError:
    return KafkaError(
        ErrorCode.producer_fenced,
        "There is a newer producer with the same transactionalId which fences the current one.",
    )


def check_producer(
    record: TransactionRecord | None, producer_id: int, epoch: int
) -> TransactionRecord:
    """The caller's producer id and epoch must be the transactional id's current ones."""
    if record is None or record.producer_id != producer_id:
        raise producer_id_not_assigned()
    if record.epoch != epoch:
        raise producer_fenced()
    return record


def next_epoch(record: TransactionRecord) -> tuple[int, int, int]:
    """(producer id, epoch, previous producer id) after a bump: a new producer id once
    the epoch is exhausted, as Kafka does."""
    if record.epoch >= limits.PRODUCER_EPOCH_MAX:
        return -1, 0, record.producer_id  # -1: the caller allocates a new producer id
    return record.producer_id, record.epoch + 1, record.previous_producer_id


def end_decision(record: TransactionRecord, commit: bool) -> str:
    """What EndTxn does in this state: 'prepare' (Ongoing), 'done' (a retry of what
    already completed), else raises Kafka's error."""
    state = state_of(record)
    if state is S.ONGOING:
        return "prepare"
    wanted_complete = S.COMPLETE_COMMIT if commit else S.COMPLETE_ABORT
    wanted_prepare = S.PREPARE_COMMIT if commit else S.PREPARE_ABORT
    if state is wanted_complete:
        return "done"
    if state is wanted_prepare:
        raise KafkaError(ErrorCode.concurrent_transactions)
    if state in (S.PREPARE_COMMIT, S.PREPARE_ABORT, S.PREPARE_EPOCH_FENCE):
        raise KafkaError(ErrorCode.invalid_txn_state)
    raise KafkaError(
        ErrorCode.invalid_txn_state,
        f"EndTxn({'commit' if commit else 'abort'}) in state {state.value}",
    )


def end_decision_v2(
    record: TransactionRecord, producer_id: int, epoch: int, commit: bool, bump: bool
) -> str:
    """What EndTxn does under Kafka 4's rules (TransactionCoordinator.endTransaction) for
    a transactional id whose last transaction used transactions v2, or a v5 request:
    'prepare', 'done' (a retry of what completed: the same answer), else raises.

    Once v2 bumped the epoch at the end of a transaction, the same epoch names the next
    EndTxn and the epoch before names a retry (or the producer id before, at
    Short.MaxValue - 1, when the bump ended with a new producer id). `bump` (EndTxn v5)
    may also abort with no partition added (Empty or Complete): the client cannot know
    whether its Produce reached the broker, so it always ends the transaction."""
    v2 = record.client_transaction_version >= 2
    retry_overflow = (
        v2
        and record.previous_producer_id == producer_id
        and epoch == limits.PRODUCER_EPOCH_MAX
        and record.epoch == 0
    )
    retry_bump = v2 and record.epoch == epoch + 1
    if record.producer_id != producer_id and not retry_overflow:
        raise producer_id_not_assigned()
    state = state_of(record)
    if not v2:
        valid = epoch == record.epoch
    elif state in (S.PREPARE_COMMIT, S.PREPARE_ABORT):
        valid = retry_bump
    elif state in (S.COMPLETE_COMMIT, S.COMPLETE_ABORT):
        valid = retry_bump or retry_overflow or epoch == record.epoch
    else:
        valid = epoch == record.epoch
    if not valid:
        raise producer_fenced()
    retry = retry_bump or retry_overflow or not v2
    wanted_complete = S.COMPLETE_COMMIT if commit else S.COMPLETE_ABORT
    if state is S.ONGOING:
        return "prepare"
    if state is wanted_complete and retry:
        return "done"
    if not commit and bump and not retry_bump and not retry_overflow and state in _COMPLETE:
        return "prepare"  # an abort with no partition added
    if state is (S.PREPARE_COMMIT if commit else S.PREPARE_ABORT):
        raise KafkaError(ErrorCode.concurrent_transactions)
    raise KafkaError(
        ErrorCode.invalid_txn_state,
        f"EndTxn({'commit' if commit else 'abort'}) in state {state.value}",
    )


def check_can_add(record: TransactionRecord) -> None:
    """AddPartitionsToTxn / AddOffsetsToTxn: not while a commit or abort is under way."""
    state = state_of(record)
    if state in (S.PREPARE_COMMIT, S.PREPARE_ABORT, S.PREPARE_EPOCH_FENCE):
        raise KafkaError(ErrorCode.concurrent_transactions)
    if state is S.DEAD:
        raise KafkaError(ErrorCode.invalid_txn_state)
