"""What DescribeTransactions and ListTransactions report of the coordinator's
transactional ids, pure: Kafka's TransactionCoordinator.handleDescribeTransactions and
TransactionStateManager.listTransactionStates (4.4), over the coordinator's records."""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterable
from typing import Any

from contextplane.coordinators.txn_state import TxnState, state_of
from contextplane.errors import KafkaError
from contextplane.metadata.records import TransactionRecord
from contextplane.protocol.error_codes import ErrorCode

_STATE_NAMES = {state.value for state in TxnState}


def describe(tid: str, record: TransactionRecord | None) -> dict[str, Any]:
    """One DescribeTransactions entry. A Dead (expiring) id is not found, as in Kafka;
    while a commit or abort is under way only partitions still without their marker
    are listed."""
    if not tid:
        return _not_found(tid, ErrorCode.invalid_request)
    if record is None or state_of(record) is TxnState.DEAD:
        return _not_found(tid, ErrorCode.transactional_id_not_found)
    topics: dict[str, list[int]] = {}
    for (topic, partition), written in sorted(record.partitions.items()):
        if not written:
            topics.setdefault(topic, []).append(partition)
    return {
        "error_code": ErrorCode.none,
        "transactional_id": tid,
        "transaction_state": record.state,
        "transaction_timeout": record.timeout_ms,
        "transaction_start_time": _time(record.start_ms),
        "producer_id": record.producer_id,
        "producer_epoch": record.epoch,
        "topics": [{"topic": t, "partitions": p} for t, p in topics.items()],
    }


def _not_found(tid: str, code: ErrorCode) -> dict[str, Any]:
    """An error entry: the message's defaults (zeros) beside the error, as Kafka sends."""
    return {
        "error_code": code,
        "transactional_id": tid,
        "transaction_state": "",
        "transaction_timeout": 0,
        "transaction_start_time": _time(0),
        "producer_id": 0,
        "producer_epoch": 0,
        "topics": [],
    }


def _time(ms: int) -> datetime.datetime:
    """The start time as the codec writes it; -1 (no transaction yet) stays -1, which
    the build step would otherwise turn into a null the field cannot carry."""
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC)


def denied(tid: str) -> dict[str, Any]:
    return _not_found(tid, ErrorCode.transactional_id_authorization_failed)


def failed(tid: str, code: ErrorCode) -> dict[str, Any]:
    """An id this coordinator does not answer for (NOT_COORDINATOR, as Kafka)."""
    return _not_found(tid, code)


def unknown_states(state_filters: Iterable[str]) -> list[str]:
    """The state filters that name no state (Kafka lists them in the response)."""
    return [name for name in state_filters if name not in _STATE_NAMES]


def matching(
    records: Iterable[TransactionRecord],
    state_filters: list[str],
    producer_id_filters: list[int],
    duration_ms: int,
    pattern: str | None,
    now_ms: int,
) -> list[TransactionRecord]:
    """The records ListTransactions returns. Each filter is skipped when empty (the
    duration when negative); state filters that name no state match nothing. Raises
    INVALID_REGULAR_EXPRESSION for a pattern that does not compile."""
    compiled = None
    if pattern:
        try:
            compiled = re.compile(pattern)
        except re.error as exc:
            raise KafkaError(ErrorCode.invalid_regular_expression, str(exc)) from exc
    states = set(state_filters)
    producer_ids = set(producer_id_filters)
    found = []
    for record in records:
        if record.state == TxnState.DEAD.value:
            continue
        if producer_ids and record.producer_id not in producer_ids:
            continue
        if states and record.state not in states:
            continue
        if duration_ms >= 0 and now_ms - record.start_ms <= duration_ms:
            continue
        if compiled is not None and compiled.fullmatch(record.transactional_id) is None:
            continue
        found.append(record)
    return found
