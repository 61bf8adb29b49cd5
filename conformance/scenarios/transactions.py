"""Transactions at the protocol level, with the classic protocol (AddPartitionsToTxn):
fencing of a zombie by a second InitProducerId, what its stale requests get, the markers
in the log, and the offsets a read_committed reader is given (LSO, aborted
transactions, ListOffsets latest)."""

from __future__ import annotations

import time
from typing import Any

from conformance import wire
from conformance.scenarios import Ctx, scenario
from conformance.wire import err

ADD_PARTITIONS_TO_TXN, END_TXN = 24, 26
CONCURRENT_TRANSACTIONS = 51
RETRY_S = 20.0


def _init(client: Any, tid: str) -> Any:
    """InitProducerId for `tid`, retried while the coordinator answers
    CONCURRENT_TRANSACTIONS (it is aborting a fenced producer's transaction)."""
    deadline = time.monotonic() + RETRY_S
    while True:
        response = wire.init_producer_id(client, transactional_id=tid)
        if response.error_code != CONCURRENT_TRANSACTIONS or time.monotonic() > deadline:
            return response
        time.sleep(0.1)


def _add_partitions(client: Any, tid: str, pid: int, epoch: int, topic: str) -> str:
    """AddPartitionsToTxn, retried while the previous transaction completes
    (CONCURRENT_TRANSACTIONS: Kafka writes its markers after answering EndTxn)."""
    deadline = time.monotonic() + RETRY_S
    while True:
        response = client.request(
            ADD_PARTITIONS_TO_TXN,
            3,
            v3_and_below_transactional_id=tid,
            v3_and_below_producer_id=pid,
            v3_and_below_producer_epoch=epoch,
            v3_and_below_topics=[{"name": topic, "partitions": [0]}],
        )
        code = response.results_by_topic_v3_and_below[0].results_by_partition[0]
        if code.partition_error_code != CONCURRENT_TRANSACTIONS or time.monotonic() > deadline:
            return err(code.partition_error_code)
        time.sleep(0.1)


def _settled(client: Any, topic: str) -> bool:
    """Wait until no transaction holds the partition's LSO (markers are written)."""
    deadline = time.monotonic() + RETRY_S
    while time.monotonic() < deadline:
        latest = wire.list_offsets(client, topic, -1).offset
        if wire.list_offsets(client, topic, -1, isolation_level=1).offset == latest:
            return True
        time.sleep(0.1)
    return False


def _end(client: Any, tid: str, pid: int, epoch: int, commit: bool) -> str:
    response = client.request(
        END_TXN, 3, transactional_id=tid, producer_id=pid, producer_epoch=epoch, committed=commit
    )
    return err(response.error_code)


def _produce(client: Any, tid: str, topic: str, pid: int, epoch: int, seq: int) -> Any:
    batch = wire.encode_batch(
        [f"{epoch}-{seq}".encode()],
        producer_id=pid,
        producer_epoch=epoch,
        base_sequence=seq,
        transactional=True,
    )
    part = wire.produce(client, topic, batch, transactional_id=tid)
    return {"error": err(part.error_code), "base_offset": part.base_offset}


def _log(ctx: Ctx, client: Any, topic: str, end: int) -> list[dict[str, Any]]:
    """Every batch below `end`, read with read_committed fetches (a fetch may return
    fewer batches than there are)."""
    batches: list[Any] = []
    offset = 0
    while offset < end:
        fetched = wire.fetch_one(client, topic, offset, isolation_level=1)
        found = wire.decode_batches(fetched.records)
        if not found:
            break
        batches.extend(found)
        offset = found[-1].base_offset + found[-1].last_offset_delta + 1
    return [
        {
            "base_offset": b.base_offset,
            "attributes": b.attributes & 0x30,  # the transactional and control bits
            "producer_id": ctx.ident("pid", b.producer_id),
            "epoch": b.producer_epoch,
            "count": b.last_offset_delta + 1,
        }
        for b in batches
    ]


def _open_transaction(ctx: Ctx, client: Any, topic: str, tid: str) -> tuple[int, int]:
    """A one-partition topic with a transaction open on it: the topic created, the
    coordinator found, the producer initialised, the partition added and one batch
    (sequence 0) written; recorded as create, add and produce0. Returns (pid, epoch)."""
    ctx.record("create", err(wire.create_topic(client, topic, 1).error_code))
    ctx.check(wire.wait_for_topic(client, topic, 1), "topic ready")
    wire.find_coordinator(client, tid, key_type=1)
    init = _init(client, tid)
    pid, epoch = init.producer_id, init.producer_epoch
    ctx.record("add", _add_partitions(client, tid, pid, epoch, topic))
    ctx.record("produce0", _produce(client, tid, topic, pid, epoch, 0))
    return pid, epoch


@scenario()
def fencing(ctx: Ctx) -> None:
    """A second InitProducerId for the same transactional id while a transaction is
    open: CONCURRENT_TRANSACTIONS until the open one is aborted, then a bumped epoch; the
    zombie's AddPartitionsToTxn, produce and EndTxn are refused."""
    client = ctx.raw()
    topic, tid = "txn-fence", "txn-fence-id"
    ctx.record("create", err(wire.create_topic(client, topic, 1).error_code))
    ctx.check(wire.wait_for_topic(client, topic, 1), "topic ready")
    found = wire.find_coordinator(client, tid, key_type=1)
    ctx.record("find_coordinator", err(found.error_code))
    first = _init(client, tid)
    ctx.record("init", {"error": err(first.error_code), "epoch": first.producer_epoch})
    pid, epoch = first.producer_id, first.producer_epoch
    ctx.record("add", _add_partitions(client, tid, pid, epoch, topic))
    ctx.record("produce", _produce(client, tid, topic, pid, epoch, 0))
    fencing_init = wire.init_producer_id(client, transactional_id=tid)
    ctx.record("second_init_first_answer", err(fencing_init.error_code))
    second = _init(client, tid)
    ctx.record(
        "second_init",
        {
            "error": err(second.error_code),
            "pid": ctx.ident("pid", second.producer_id),
            "epoch_bump": second.producer_epoch - epoch,
        },
    )
    ctx.record("zombie_add", _add_partitions(client, tid, pid, epoch, topic))
    ctx.record("zombie_produce", _produce(client, tid, topic, pid, epoch, 1))
    ctx.record("zombie_end", _end(client, tid, pid, epoch, commit=True))
    new_epoch = second.producer_epoch
    ctx.record("new_add", _add_partitions(client, tid, pid, new_epoch, topic))
    ctx.record("new_produce", _produce(client, tid, topic, pid, new_epoch, 0))
    ctx.record("new_commit", _end(client, tid, pid, new_epoch, commit=True))
    ctx.check(_settled(client, topic), "the commit's marker is written")
    fetched = wire.fetch_one(client, topic, 0, isolation_level=1)
    ctx.record(
        "read_committed",
        {
            "high_watermark": fetched.high_watermark,
            "last_stable_offset": fetched.last_stable_offset,
            "aborted": [
                (ctx.ident("pid", a.producer_id), a.first_offset)
                for a in fetched.aborted_transactions or ()
            ],
            "log": _log(ctx, client, topic, fetched.high_watermark),
        },
    )


@scenario()
def read_committed_offsets(ctx: Ctx) -> None:
    """An open transaction holds the LSO: ListOffsets latest and a read_committed fetch
    stop at its first offset until EndTxn; an aborted one is listed for the reader."""
    client = ctx.raw()
    topic, tid = "txn-lso", "txn-lso-id"
    ctx.record("create", err(wire.create_topic(client, topic, 1).error_code))
    ctx.check(wire.wait_for_topic(client, topic, 1), "topic ready")
    wire.find_coordinator(client, tid, key_type=1)
    plain = wire.produce(client, topic, wire.encode_batch([b"p0", b"p1"]))
    ctx.record("plain", err(plain.error_code))
    init = _init(client, tid)
    pid, epoch = init.producer_id, init.producer_epoch

    def offsets(step: str) -> None:
        fetched = wire.fetch_one(client, topic, 0, isolation_level=1)
        ctx.record(
            step,
            {
                "latest": wire.list_offsets(client, topic, -1).offset,
                "latest_committed": wire.list_offsets(client, topic, -1, isolation_level=1).offset,
                "high_watermark": fetched.high_watermark,
                "last_stable_offset": fetched.last_stable_offset,
                # Every batch read_committed fetches return (one fetch may stop early).
                "readable": [
                    b["base_offset"] for b in _log(ctx, client, topic, fetched.last_stable_offset)
                ],
                "aborted": [a.first_offset for a in fetched.aborted_transactions or ()],
            },
        )

    for round_, commit in enumerate((False, True)):
        ctx.record(f"add{round_}", _add_partitions(client, tid, pid, epoch, topic))
        for seq in range(2):
            ctx.record(
                f"produce{round_}.{seq}", _produce(client, tid, topic, pid, epoch, round_ * 2 + seq)
            )
        wire.produce(client, topic, wire.encode_batch([b"after"]))
        offsets(f"open{round_}")
        ctx.record(f"end{round_}", _end(client, tid, pid, epoch, commit))
        ctx.check(_settled(client, topic), "the marker is written")
        offsets(f"ended{round_}")


@scenario()
def plain_batch_under_an_open_transaction(ctx: Ctx) -> None:
    """A non-transactional batch carrying the producer id and epoch of a producer whose
    transaction is open on the partition, with its next sequence: refused
    (INVALID_TXN_STATE, Kafka's ProducerAppendInfo), so the transaction's own batch with
    that sequence is still written and committed."""
    client = ctx.raw()
    topic, tid = "txn-plain-inject", "txn-plain-inject-id"
    pid, epoch = _open_transaction(ctx, client, topic, tid)
    plain = wire.encode_batch([b"plain"], producer_id=pid, producer_epoch=epoch, base_sequence=1)
    ctx.record("plain_with_its_pid", err(wire.produce(client, topic, plain).error_code))
    ctx.record("produce1", _produce(client, tid, topic, pid, epoch, 1))
    ctx.record("commit", _end(client, tid, pid, epoch, commit=True))
    ctx.check(_settled(client, topic), "the commit's marker is written")
    fetched = wire.fetch_one(client, topic, 0, isolation_level=1)
    ctx.record("log", _log(ctx, client, topic, fetched.high_watermark))


@scenario(
    quick=False,
    settings={"transaction.abort.timed.out.transaction.cleanup.interval.ms": "200"},
)
def timeout_abort(ctx: Ctx) -> None:
    """A transaction left open past its transaction.timeout.ms is aborted by the
    coordinator with an epoch bump: its marker releases the LSO, and the producer's
    stale requests and its KIP-360 recovery get Kafka's answers."""
    client = ctx.raw()
    topic, tid = "txn-timeout", "txn-timeout-id"
    ctx.record("create", err(wire.create_topic(client, topic, 1).error_code))
    ctx.check(wire.wait_for_topic(client, topic, 1), "topic ready")
    wire.find_coordinator(client, tid, key_type=1)
    init = wire.retry_coordinator(
        lambda: client.request(
            22,
            4,
            transactional_id=tid,
            transaction_timeout=1000,
            producer_id=-1,
            producer_epoch=-1,
        )
    )
    pid, epoch = init.producer_id, init.producer_epoch
    ctx.record("init", {"error": err(init.error_code), "epoch": epoch})
    ctx.record("add", _add_partitions(client, tid, pid, epoch, topic))
    ctx.record("produce", _produce(client, tid, topic, pid, epoch, 0))
    ctx.check(_settled(client, topic), "the coordinator aborts the transaction")
    fetched = wire.fetch_one(client, topic, 0, isolation_level=1)
    ctx.record(
        "aborted",
        {
            "high_watermark": fetched.high_watermark,
            "last_stable_offset": fetched.last_stable_offset,
            "aborted": [a.first_offset for a in fetched.aborted_transactions or ()],
            "log": _log(ctx, client, topic, fetched.high_watermark),
        },
    )
    ctx.record("stale_add", _add_partitions(client, tid, pid, epoch, topic))
    ctx.record("stale_commit", _end(client, tid, pid, epoch, commit=True))
    ctx.record("stale_abort", _end(client, tid, pid, epoch, commit=False))
    recovered = client.request(
        22, 4, transactional_id=tid, transaction_timeout=1000, producer_id=pid, producer_epoch=epoch
    )
    ctx.record(
        "recover",
        {
            "error": err(recovered.error_code),
            "pid": ctx.ident("pid", recovered.producer_id),
            "epoch_bump": recovered.producer_epoch - epoch,
        },
    )
