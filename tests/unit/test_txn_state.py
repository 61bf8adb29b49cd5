"""The transaction coordinator's state machine: Kafka's transitions and each request's
decision in every state."""

from __future__ import annotations

import pytest

from contextplane import limits
from contextplane.coordinators.txn_state import (
    VALID_PREVIOUS,
    IllegalTransition,
    TxnState,
    check_can_add,
    check_producer,
    end_decision,
    next_epoch,
    transition,
)
from contextplane.errors import KafkaError
from contextplane.metadata.records import TransactionRecord
from contextplane.protocol.error_codes import ErrorCode

S = TxnState


def record(state: TxnState, epoch: int = 3) -> TransactionRecord:
    return TransactionRecord("tid", 7, epoch, 60_000, state.value, 0)


@pytest.mark.parametrize("source", list(TxnState))
@pytest.mark.parametrize("target", list(TxnState))
def test_every_transition_is_allowed_exactly_as_kafka_allows_it(
    source: TxnState, target: TxnState
) -> None:
    if source in VALID_PREVIOUS[target]:
        assert transition(record(source), target, 5).state == target.value
    else:
        with pytest.raises(IllegalTransition, match=f"{source.value} -> {target.value}"):
            transition(record(source), target, 5)


def test_transition_copies_partitions_and_groups() -> None:
    before = record(S.ONGOING)
    before.partitions[("t", 0)] = False
    after = transition(before, S.PREPARE_COMMIT, 9)
    after.partitions[("t", 1)] = False
    assert list(before.partitions) == [("t", 0)]
    assert after.update_ms == 9


def test_producer_id_and_epoch_checks() -> None:
    current = record(S.ONGOING, epoch=3)
    assert check_producer(current, 7, 3) is current
    for rec, pid, epoch, code in (
        (None, 7, 3, ErrorCode.invalid_producer_id_mapping),
        (current, 8, 3, ErrorCode.invalid_producer_id_mapping),
        (current, 7, 2, ErrorCode.producer_fenced),
        (current, 7, 4, ErrorCode.producer_fenced),
    ):
        with pytest.raises(KafkaError) as info:
            check_producer(rec, pid, epoch)
        assert info.value.code == code


@pytest.mark.parametrize(
    ("state", "commit", "outcome"),
    [
        (S.ONGOING, True, "prepare"),
        (S.ONGOING, False, "prepare"),
        (S.COMPLETE_COMMIT, True, "done"),
        (S.COMPLETE_ABORT, False, "done"),
        (S.PREPARE_COMMIT, True, ErrorCode.concurrent_transactions),
        (S.PREPARE_ABORT, False, ErrorCode.concurrent_transactions),
        (S.PREPARE_COMMIT, False, ErrorCode.invalid_txn_state),
        (S.COMPLETE_COMMIT, False, ErrorCode.invalid_txn_state),
        (S.COMPLETE_ABORT, True, ErrorCode.invalid_txn_state),
        (S.EMPTY, True, ErrorCode.invalid_txn_state),
        (S.EMPTY, False, ErrorCode.invalid_txn_state),
    ],
)
def test_end_txn_in_each_state(state: TxnState, commit: bool, outcome: object) -> None:
    if isinstance(outcome, str):
        assert end_decision(record(state), commit) == outcome
    else:
        with pytest.raises(KafkaError) as info:
            end_decision(record(state), commit)
        assert info.value.code == outcome


@pytest.mark.parametrize("state", list(TxnState))
def test_adding_partitions_waits_for_a_commit_or_abort_under_way(state: TxnState) -> None:
    if state in (S.PREPARE_COMMIT, S.PREPARE_ABORT, S.PREPARE_EPOCH_FENCE):
        with pytest.raises(KafkaError) as info:
            check_can_add(record(state))
        assert info.value.code == ErrorCode.concurrent_transactions
    elif state is S.DEAD:
        with pytest.raises(KafkaError):
            check_can_add(record(state))
    else:
        check_can_add(record(state))


def test_epoch_bump_and_exhaustion() -> None:
    assert next_epoch(record(S.EMPTY, epoch=3)) == (7, 4, -1)
    # An exhausted epoch: a new producer id (the caller allocates it), epoch 0.
    assert next_epoch(record(S.EMPTY, epoch=limits.PRODUCER_EPOCH_MAX)) == (-1, 0, 7)
