"""The admin side of transactions at the protocol level, as `kafka-transactions.sh`
uses it: DescribeTransactions and ListTransactions of an open transaction,
DescribeProducers of its partition, the admin's ABORT marker (WriteTxnMarkers with the
producer's epoch) that releases the last stable offset, and what the coordinator
reports once the producer aborts."""

from __future__ import annotations

import time
from typing import Any

from conformance import wire
from conformance.scenarios import Ctx, scenario
from conformance.scenarios.transactions import _open_transaction
from conformance.wire import err

DESCRIBE_PRODUCERS, DESCRIBE_TRANSACTIONS, LIST_TRANSACTIONS = 61, 65, 66
WRITE_TXN_MARKERS, END_TXN = 27, 26
RETRY_S = 20.0


def _describe(ctx: Ctx, client: Any, tid: str) -> dict[str, Any]:
    state = client.request(DESCRIBE_TRANSACTIONS, 0, transactional_ids=[tid]).transaction_states[0]
    return {
        "error": err(state.error_code),
        "state": state.transaction_state,
        "timeout_ms": int(state.transaction_timeout.total_seconds() * 1000),
        "started": state.transaction_start_time is not None
        and state.transaction_start_time.timestamp() > 0,
        "pid": ctx.ident("pid", state.producer_id),
        "epoch": state.producer_epoch,
        "topics": sorted((t.topic, list(t.partitions)) for t in state.topics),
    }


def _producers(ctx: Ctx, client: Any, topic: str) -> list[dict[str, Any]]:
    response = client.request(
        DESCRIBE_PRODUCERS, 0, topics=[{"name": topic, "partition_indexes": [0]}]
    )
    partition = response.topics[0].partitions[0]
    return [
        {
            "error": err(partition.error_code),
            "pid": ctx.ident("pid", p.producer_id),
            "epoch": p.producer_epoch,
            "last_sequence": p.last_sequence,
            "coordinator_epoch": p.coordinator_epoch,
            "txn_start_offset": p.current_txn_start_offset,
        }
        for p in partition.active_producers
    ]


@scenario()
def describe_list_and_abort(ctx: Ctx) -> None:
    client = ctx.raw()
    topic, tid = "txn-admin", "txn-admin-id"
    pid, epoch = _open_transaction(ctx, client, topic, tid)
    wire.produce(client, topic, wire.encode_batch([b"after"]))
    ctx.record("ongoing", _describe(ctx, client, tid))
    ctx.record("unknown", _describe(ctx, client, "txn-admin-unknown"))
    listed = client.request(
        LIST_TRANSACTIONS,
        2,
        state_filters=["Ongoing", "Sleeping"],
        producer_id_filters=[],
        duration_filter=-1,
        transactional_id_pattern="txn-admin-.*",
    )
    ctx.record(
        "list",
        {
            "error": err(listed.error_code),
            "unknown_states": list(listed.unknown_state_filters),
            "found": [
                (s.transactional_id, ctx.ident("pid", s.producer_id), s.transaction_state)
                for s in listed.transaction_states
            ],
        },
    )
    bad = client.request(
        LIST_TRANSACTIONS,
        2,
        state_filters=[],
        producer_id_filters=[],
        duration_filter=-1,
        transactional_id_pattern="(unclosed",
    )
    ctx.record("list_bad_pattern", err(bad.error_code))
    ctx.record("producers_open", _producers(ctx, client, topic))
    ctx.record("lso_open", wire.list_offsets(client, topic, -1, isolation_level=1).offset)
    written = client.request(
        WRITE_TXN_MARKERS,
        1,
        markers=[
            {
                "producer_id": pid,
                "producer_epoch": epoch,
                "transaction_result": False,
                "topics": [{"name": topic, "partition_indexes": [0]}],
                "coordinator_epoch": -1,
            }
        ],
    )
    ctx.record(
        "admin_abort",
        [err(p.error_code) for t in written.markers[0].topics for p in t.partitions],
    )
    ctx.record("lso_after_abort", wire.list_offsets(client, topic, -1, isolation_level=1).offset)
    ctx.record("producers_after_abort", _producers(ctx, client, topic))
    ctx.record("still_ongoing", _describe(ctx, client, tid))
    ended = client.request(
        END_TXN, 3, transactional_id=tid, producer_id=pid, producer_epoch=epoch, committed=False
    )
    ctx.record("end", err(ended.error_code))
    deadline = time.monotonic() + RETRY_S
    while (
        client.request(DESCRIBE_TRANSACTIONS, 0, transactional_ids=[tid])
        .transaction_states[0]
        .transaction_state.startswith("Prepare")
        and time.monotonic() < deadline
    ):
        time.sleep(0.1)
    ctx.record("complete", _describe(ctx, client, tid))
