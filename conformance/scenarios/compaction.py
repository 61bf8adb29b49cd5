"""Compacted topics: what a consumer reads once the log cleaner has run.

The same keyed input goes to both brokers: overwrites, tombstones, batches of each codec,
an aborted and a committed transaction (one transactional id, so its last data batch is
the committed one). Cleaning is forced on both: `segment.ms` rolls a segment once the
input is older than it (a sentinel record produced after that rolls it), and
`min.cleanable.dirty.ratio=0.01`, `log.cleaner.backoff.ms=100` make the cleaner take the
partition at once.

What is compared is only what both promise: the batches below the sentinel, which sit
in closed segments on both (Kafka never cleans the active segment; contextplane never
cleans the newest segment derived from its uploads, nor data not yet uploaded). For each
batch: its base offset and last offset delta (kept by both), its codec (survivors keep
the original batch's, Kafka's MemoryRecords.filterTo), the transactional, control and
delete-horizon bits, and its records' offsets, keys and values. Broker clocks (batch
timestamps, which hold the delete horizon once set) are not compared. Kafka's cleaner runs
asynchronously: each phase waits, with a deadline, until the log below the sentinel holds
each key once (phase 1) or no tombstone (phase 2), then records what is there, so a
broker that never gets there shows up as a difference.

Phase 2 waits out `delete.retention.ms` after phase 1 and dirties the log again (one
record and a second sentinel): the cleanings that follow drop the tombstones whose
delete horizon passed, and give a horizon to the markers whose transaction has no batch
left (Kafka drops a marker only a cleaning after its transaction's last batch went).
"""

from __future__ import annotations

import time
from typing import Any

from conformance import wire
from conformance.scenarios import Ctx, scenario
from conformance.scenarios.transactions import _add_partitions, _end, _init, _settled
from conformance.wire import Rec, err

# Long enough that the whole input lands in one segment on both (Kafka rolls on append:
# a segment rolled mid-input would be cleaned once more before the observation).
SEGMENT_MS = 4000
# Long enough that no tombstone outlives its horizon before phase 1 is observed, on a
# busy machine too (Kafka may clean the first segments while the input is produced).
DELETE_RETENTION_MS = 15_000
CLEANED_WITHIN_S = 60.0
# Past segment.ms for both: contextplane dates a segment by its upload, up to
# upload.interval.ms after the produce (250 ms here, below).
ROLL_MARGIN_MS = 750

# contextplane uploads a quiet partition's bytes once they are `upload.interval.ms` old
# (5 s by default): past SEGMENT_MS + ROLL_MARGIN_MS, so the sentinel would share the
# input's object, its newest segment, which is never cleaned. Kafka ignores the name.
SETTINGS = {"log.cleaner.backoff.ms": "100", "upload.interval.ms": "250"}


def _wait_until_clock(deadline_ms: int) -> None:
    """Wait for the wall clock to pass `deadline_ms`: segments roll and delete horizons
    pass by time, which is the condition waited on."""
    while wire.now_ms() < deadline_ms:
        time.sleep(0.05)


def _batch(records: list[tuple[str, str | None]], codec: str, **kw: Any) -> bytes:
    now = wire.now_ms()
    return wire.encode_batch(
        [Rec(value=None if v is None else v.encode(), key=k.encode()) for k, v in records],
        compression=codec,
        timestamp=now,
        **kw,
    )


def _produce(ctx: Ctx, client: Any, step: str, topic: str, batch: bytes, **kw: Any) -> int:
    part = wire.produce(client, topic, batch, **kw)
    ctx.record(step, err(part.error_code))
    return int(part.base_offset)


def _log_below(client: Any, topic: str, end: int) -> list[wire.FetchedBatch]:
    """Every batch below `end` (read_uncommitted: aborted records show if still there)."""
    batches: list[wire.FetchedBatch] = []
    offset = 0
    while offset < end:
        fetched = wire.fetch_one(client, topic, offset)
        found = [b for b in wire.decode_batches(fetched.records) if b.base_offset < end]
        found = [b for b in found if b.base_offset + b.last_offset_delta >= offset]
        if not found:
            break
        batches.extend(found)
        offset = found[-1].base_offset + found[-1].last_offset_delta + 1
    return batches


def _shape(batches: list[wire.FetchedBatch]) -> list[dict[str, Any]]:
    return [
        {
            "base_offset": b.base_offset,
            "last_offset_delta": b.last_offset_delta,
            "codec": b.codec,
            "bits": b.attributes & 0x70,  # transactional, control, delete horizon (KIP-534)
            "records": [
                [r["offset"], r["key"], r["value"]] for r in b.records if not b.attributes & 0x20
            ],
        }
        for b in batches
    ]


def _keys(batches: list[wire.FetchedBatch]) -> list[str]:
    return [r["key"] for b in batches if not b.attributes & 0x20 for r in b.records]


def _wait_for_log(
    client: Any, topic: str, end: int, done: Any
) -> tuple[bool, list[wire.FetchedBatch]]:
    deadline = time.monotonic() + CLEANED_WITHIN_S
    while True:
        batches = _log_below(client, topic, end)
        if done(batches) or time.monotonic() > deadline:
            return done(batches), batches
        time.sleep(0.2)


@scenario(settings=SETTINGS, beside=True)  # ~30 s, nearly all of it waiting for clocks
def cleaned_log(ctx: Ctx) -> None:
    """Keyed batches of every codec, overwrites, tombstones, an aborted and a committed
    transaction on a compacted topic; what is left below a sentinel after the first
    cleaning, then after delete.retention.ms and a second cleaning."""
    client = ctx.raw()
    topic, tid = "compacted-diff", "compacted-diff-txn"
    created = wire.create_topic(
        client,
        topic,
        1,
        cleanup_policy="compact",
        segment_ms=str(SEGMENT_MS),
        min_cleanable_dirty_ratio="0.01",
        delete_retention_ms=str(DELETE_RETENTION_MS),
    )
    ctx.record("create", err(created.error_code))
    ctx.check(wire.wait_for_topic(client, topic, 1), "topic ready")
    # The transaction coordinator first (Kafka creates its internal topic now, which takes
    # seconds): the input below must land within one segment.ms.
    wire.retry_coordinator(lambda: wire.find_coordinator(client, tid, key_type=1), 60.0)
    init = wire.retry_coordinator(lambda: _init(client, tid), 60.0)
    pid, epoch = init.producer_id, init.producer_epoch
    ctx.record("init", err(init.error_code))

    plain = [
        ("a", [("k0", "a0"), ("k1", "a1"), ("k2", "a2"), ("k6", "a6")], "none"),
        ("b", [("k0", "b0"), ("k3", "b3"), ("k1", None), ("k7", "b7")], "lz4"),
        ("c", [("k2", "c2"), ("k4", "c4"), ("k7", "c7"), ("k8", "c8")], "snappy"),
    ]
    for step, records, codec in plain:
        _produce(ctx, client, f"produce_{step}", topic, _batch(records, codec))

    sequence = 0
    for step, records, codec, commit in (
        ("aborted", [("k0", "x0"), ("k4", "x4")], "gzip", False),
        ("committed", [("k3", "t3"), ("k5", "t5")], "zstd", True),
    ):
        ctx.record(f"add_{step}", _add_partitions(client, tid, pid, epoch, topic))
        batch = _batch(
            records,
            codec,
            producer_id=pid,
            producer_epoch=epoch,
            base_sequence=sequence,
            transactional=True,
        )
        sequence += len(records)
        _produce(ctx, client, f"produce_{step}", topic, batch, transactional_id=tid)
        ctx.record(f"end_{step}", _end(client, tid, pid, epoch, commit))
        ctx.check(_settled(client, topic), "the marker is written")

    later = [
        ("d", [("k6", None), ("k8", "d8"), ("k9", "d9")], "gzip"),
        ("e", [("k5", "e5"), ("k9", "e9")], "zstd"),
    ]
    for step, records, codec in later:
        _produce(ctx, client, f"produce_{step}", topic, _batch(records, codec))

    _wait_until_clock(wire.now_ms() + SEGMENT_MS + ROLL_MARGIN_MS)
    sentinel = _produce(ctx, client, "sentinel", topic, _batch([("s", "s1")], "none"))

    def each_key_once(batches: list[wire.FetchedBatch]) -> bool:
        keys = _keys(batches)
        return len(keys) == len(set(keys))

    done, batches = _wait_for_log(client, topic, sentinel, each_key_once)
    ctx.record("cleaned_each_key_once", done)
    ctx.record("after_first_cleaning", _shape(batches))
    committed = wire.fetch_one(client, topic, 0, isolation_level=1)
    ctx.record("aborted_listed", len(committed.aborted_transactions or ()))

    # Phase 2: past the tombstones' delete horizon, dirty the log again.
    _wait_until_clock(wire.now_ms() + DELETE_RETENTION_MS + ROLL_MARGIN_MS)
    _produce(ctx, client, "produce_f", topic, _batch([("k9", "f9")], "none"))
    _wait_until_clock(wire.now_ms() + SEGMENT_MS + ROLL_MARGIN_MS)
    second = _produce(ctx, client, "sentinel2", topic, _batch([("s", "s2")], "none"))

    def no_tombstones(batches: list[wire.FetchedBatch]) -> bool:
        values = [r["value"] for b in batches if not b.attributes & 0x20 for r in b.records]
        return each_key_once(batches) and None not in values and bool(values)

    done, batches = _wait_for_log(client, topic, second, no_tombstones)
    ctx.record("tombstones_removed", done)
    ctx.record("after_delete_retention", _shape(batches))
    committed = wire.fetch_one(client, topic, 0, isolation_level=1)
    ctx.record("aborted_listed_after_delete_retention", len(committed.aborted_transactions or ()))
    ctx.record("earliest", wire.list_offsets(client, topic, -2).offset)
