"""Transactions v2 (KIP-890) at the protocol level, as the Java 4.x producer speaks it:
Produce v12 adds its partition to the transaction (no AddPartitionsToTxn), every
EndTxn v5 bumps the epoch and returns it, a retried EndTxn gets the same answer, a
zombie's late produce under the epoch before is fenced, an abort needs no partition
added; and what an older client's transactional Produce (v11) gets for a partition
outside the transaction. The markers in the log carry the bumped epochs."""

from __future__ import annotations

import time
from typing import Any

from conformance import wire
from conformance.scenarios import Ctx, scenario
from conformance.scenarios.transactions import _init, _log, _settled
from conformance.wire import err

END_TXN = 26
CONCURRENT_TRANSACTIONS, NOT_ENOUGH_REPLICAS = 51, 19
RETRY_S = 20.0


def _end(client: Any, tid: str, pid: int, epoch: int, commit: bool) -> Any:
    """EndTxn v5, retried while the previous completion is under way (Kafka answers
    once the Prepare state is durable and writes the markers after)."""
    deadline = time.monotonic() + RETRY_S
    while True:
        response = client.request(
            END_TXN,
            5,
            transactional_id=tid,
            producer_id=pid,
            producer_epoch=epoch,
            committed=commit,
        )
        if response.error_code != CONCURRENT_TRANSACTIONS or time.monotonic() > deadline:
            return response
        time.sleep(0.1)


def _produce(
    client: Any, tid: str, topic: str, pid: int, epoch: int, seq: int, version: int = 12
) -> str:
    """One transactional batch; retried while the leader cannot verify it yet (the
    previous transaction's markers are being written: NOT_ENOUGH_REPLICAS before v12,
    CONCURRENT_TRANSACTIONS from v12)."""
    batch = wire.encode_batch(
        [f"{epoch}-{seq}".encode()],
        producer_id=pid,
        producer_epoch=epoch,
        base_sequence=seq,
        transactional=True,
    )
    deadline = time.monotonic() + RETRY_S
    while True:
        part = wire.produce(client, topic, batch, transactional_id=tid, version=version)
        busy = part.error_code in (NOT_ENOUGH_REPLICAS, CONCURRENT_TRANSACTIONS)
        if not busy or time.monotonic() > deadline:
            return err(part.error_code)
        time.sleep(0.1)


@scenario()
def epoch_bumps(ctx: Ctx) -> None:
    """Three transactions of one producer with transactions v2, its retries and a
    zombie's late requests; the epochs each answer names and the log's markers."""
    client = ctx.raw()
    topic, tid = "txn-v2", "txn-v2-id"
    ctx.record("create", err(wire.create_topic(client, topic, 2).error_code))
    ctx.check(wire.wait_for_topic(client, topic, 2), "topic ready")
    ctx.record("find_coordinator", err(wire.find_coordinator(client, tid, key_type=1).error_code))
    init = _init(client, tid)
    pid, e0 = init.producer_id, init.producer_epoch
    ctx.record("init", {"error": err(init.error_code), "epoch": e0})

    def end(epoch: int, commit: bool) -> dict[str, Any]:
        response = _end(client, tid, pid, epoch, commit)
        return {
            "error": err(response.error_code),
            "pid": ctx.ident("pid", response.producer_id),
            "epoch": response.producer_epoch - e0 if response.producer_epoch >= 0 else -1,
        }

    ctx.record("produce", _produce(client, tid, topic, pid, e0, 0))
    ctx.record("commit", end(e0, True))
    ctx.record("commit_retried", end(e0, True))
    ctx.record("abort_under_the_epoch_before", end(e0, False))
    ctx.record("zombie_produce", _produce(client, tid, topic, pid, e0, 1))
    ctx.record("second_produce", _produce(client, tid, topic, pid, e0 + 1, 0))
    ctx.record("abort", end(e0 + 1, False))
    ctx.record("abort_with_nothing_added", end(e0 + 2, False))
    ctx.record("commit_with_nothing_added", end(e0 + 3, True))
    ctx.record("stale_commit", end(e0 + 1, True))
    # An older client's transactional Produce for a partition it never added.
    for version in (9, 10, 11):
        ctx.record(
            f"v{version}_produce_not_added",
            _produce(client, tid, topic, pid, e0 + 3, 0, version=version),
        )
    ctx.record("v11_produce_stale_epoch", _produce(client, tid, topic, pid, e0, 5, version=11))
    ctx.check(_settled(client, topic), "the markers are written")
    fetched = wire.fetch_one(client, topic, 0, isolation_level=1)
    log = _log(ctx, client, topic, fetched.high_watermark)
    # From the aborted transaction's first offset: one fetch may stop before it.
    aborted = wire.fetch_one(client, topic, 2, isolation_level=1).aborted_transactions
    for batch in log:
        batch["epoch"] -= e0
    ctx.record(
        "read_committed",
        {
            "high_watermark": fetched.high_watermark,
            "last_stable_offset": fetched.last_stable_offset,
            "aborted": [a.first_offset for a in aborted or ()],
            "log": log,
        },
    )
