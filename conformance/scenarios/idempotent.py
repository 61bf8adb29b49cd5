"""The idempotent producer at the protocol level: ids, retries, sequence gaps, fencing."""

from __future__ import annotations

from typing import Any

from conformance import wire
from conformance.scenarios import Ctx, scenario
from conformance.wire import err


def _produce(client: Any, topic: str, values: list[bytes], pid: int, epoch: int, seq: int) -> Any:
    batch = wire.encode_batch(values, producer_id=pid, producer_epoch=epoch, base_sequence=seq)
    return wire.produce(client, topic, batch)


def _res(part: Any) -> dict[str, Any]:
    return {"error": err(part.error_code), "base_offset": part.base_offset}


@scenario()
def sequences(ctx: Ctx) -> None:
    """InitProducerId, in-order batches, a retried batch (deduplicated to its first
    offsets), an older retry, a sequence gap, a duplicate out of the window."""
    client = ctx.raw()
    ctx.record("create", err(wire.create_topic(client, "idem-seq", 1).error_code))
    ctx.check(wire.wait_for_topic(client, "idem-seq", 1), "topic ready")
    init = wire.init_producer_id(client)
    ctx.record(
        "init",
        {
            "error": err(init.error_code),
            "producer_id": ctx.ident("pid", init.producer_id),
            "epoch": init.producer_epoch,
        },
    )
    pid, epoch = init.producer_id, init.producer_epoch
    ctx.record("seq0", _res(_produce(client, "idem-seq", [b"a", b"b"], pid, epoch, 0)))
    ctx.record("seq2", _res(_produce(client, "idem-seq", [b"c"], pid, epoch, 2)))
    ctx.record("retry_seq2", _res(_produce(client, "idem-seq", [b"c"], pid, epoch, 2)))
    ctx.record("retry_seq0", _res(_produce(client, "idem-seq", [b"a", b"b"], pid, epoch, 0)))
    ctx.record("gap_seq5", _res(_produce(client, "idem-seq", [b"e"], pid, epoch, 5)))
    ctx.record("seq3", _res(_produce(client, "idem-seq", [b"d"], pid, epoch, 3)))
    for seq in range(4, 10):
        _produce(client, "idem-seq", [f"x{seq}".encode()], pid, epoch, seq)
    ctx.record("old_dup_outside_window", _res(_produce(client, "idem-seq", [b"c"], pid, epoch, 2)))
    fetched = wire.fetch_one(client, "idem-seq", 0)
    batches = wire.decode_batches(fetched.records)
    ctx.record(
        "log",
        [
            {
                "base_offset": b.base_offset,
                "producer_id": ctx.ident("pid", b.producer_id),
                "epoch": b.producer_epoch,
                "base_sequence": b.base_sequence,
                "values": [r["value"] for r in b.records],
            }
            for b in batches
        ],
    )
    ctx.record("high_watermark", fetched.high_watermark)


@scenario()
def fencing(ctx: Ctx) -> None:
    """Epoch bump through InitProducerId with the current id/epoch, the old epoch fenced,
    the new epoch starting at sequence 0, an unknown producer id, a new id per call."""
    client = ctx.raw()
    ctx.record("create", err(wire.create_topic(client, "idem-fence", 1).error_code))
    ctx.check(wire.wait_for_topic(client, "idem-fence", 1), "topic ready")
    first = wire.init_producer_id(client)
    pid, epoch = first.producer_id, first.producer_epoch
    ctx.record("first", {"pid": ctx.ident("pid", pid), "epoch": epoch})
    ctx.record("epoch0.seq0", _res(_produce(client, "idem-fence", [b"a"], pid, epoch, 0)))
    bumped = wire.init_producer_id(client, pid, epoch)
    ctx.record(
        "bump",
        {
            "error": err(bumped.error_code),
            "pid": ctx.ident("pid", bumped.producer_id),
            "epoch": bumped.producer_epoch,
        },
    )
    new_epoch = bumped.producer_epoch
    ctx.record("new_epoch.seq0", _res(_produce(client, "idem-fence", [b"b"], pid, new_epoch, 0)))
    ctx.record("old_epoch.seq1", _res(_produce(client, "idem-fence", [b"c"], pid, epoch, 1)))
    ctx.record("new_epoch.seq5", _res(_produce(client, "idem-fence", [b"d"], pid, new_epoch, 5)))
    stale = wire.init_producer_id(client, pid, epoch)
    ctx.record(
        "bump_with_stale_epoch",
        {"error": err(stale.error_code), "pid": ctx.ident("pid", stale.producer_id)},
    )
    other = wire.init_producer_id(client)
    ctx.record("second_id", ctx.ident("pid", other.producer_id))
    unknown = wire.init_producer_id(client, 987654321, 0)
    ctx.record("bump_unknown_id", {"error": err(unknown.error_code)})
    ctx.record(
        "unknown_pid.seq7",
        _res(_produce(client, "idem-fence", [b"u"], 123456789, 0, 7)),
    )
    ctx.record(
        "unknown_pid.seq0",
        _res(_produce(client, "idem-fence", [b"u"], 123456788, 0, 0)),
    )
    ctx.record(
        "epoch_without_pid",
        _res(_produce(client, "idem-fence", [b"v"], -1, 3, 0)),
    )


@scenario()
def transactional_batch_without_transaction(ctx: Ctx) -> None:
    """A batch flagged transactional, and a produce naming a transactional id, with no
    transaction begun (transactions are not implemented by contextplane)."""
    client = ctx.raw()
    ctx.record("create", err(wire.create_topic(client, "idem-txn", 1).error_code))
    ctx.check(wire.wait_for_topic(client, "idem-txn", 1), "topic ready")
    init = wire.init_producer_id(client)
    batch = wire.encode_batch(
        [b"t"],
        producer_id=init.producer_id,
        producer_epoch=init.producer_epoch,
        base_sequence=0,
        transactional=True,
    )
    part = wire.produce(client, "idem-txn", batch, transactional_id="txn-1")
    ctx.record("transactional_produce", _res(part))
    init = wire.init_producer_id(client, transactional_id="txn-1")
    ctx.record("init_transactional", err(init.error_code))
