"""The log cleaner's rules (storage/compaction.py) against a model: over random logs of
keyed records, tombstones and transactions (committed and aborted), cleaning keeps
exactly each key's latest committed record, at its original offset; tombstones stay
until the delete horizon set at their first cleaning has passed; markers get a horizon
from the first cleaning that finds no batch of their transaction, and go once it passed."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conformance import wire
from conformance.wire import CODEC_NAMES
from contextplane.metadata.records import RangeRecord
from contextplane.protocol.control_records import marker_batch, marker_type
from contextplane.protocol.decompress import GZIP, LZ4, SNAPPY, ZSTD
from contextplane.protocol.record_codec import delete_horizon, read_records, write_batch
from contextplane.protocol.records import TRANSACTIONAL_BIT, parse_header, stamp
from contextplane.storage.compaction import (
    AbortedIndex,
    CleanerConfig,
    OffsetMap,
    TransactionsSeen,
    clean_batches,
    cleanable_end,
    map_batches,
    must_clean,
)
from contextplane.storage.transactions_index import AbortedTxn
from tests.support.rawclient import record_batch

LIMIT = 1 << 24
NOW = 1_700_000_100_000
RETENTION = 1_000

# One entry of a generated log: a plain batch of (key, value|None) records, or a
# transaction of such batches that commits or aborts.
record = st.tuples(
    st.sampled_from([b"a", b"b", b"c", b"d", b"e"]), st.one_of(st.none(), st.binary(max_size=4))
)
plain = st.tuples(st.just("plain"), st.lists(record, min_size=1, max_size=4))
txn = st.tuples(st.sampled_from(["commit", "abort"]), st.lists(record, min_size=1, max_size=4))
logs = st.lists(st.one_of(plain, txn), min_size=1, max_size=25)


def build(entries: list) -> tuple[bytes, list[AbortedTxn], dict[int, tuple[bytes, bytes | None]]]:
    """The log's bytes, its aborted index and every committed record by offset."""
    data = bytearray()
    aborted: list[AbortedTxn] = []
    committed: dict[int, tuple[bytes, bytes | None]] = {}
    offset = 0
    for producer_id, (kind, records) in enumerate(entries, start=100):
        keys = [k for k, _ in records]
        values = [v for _, v in records]
        if kind == "plain":
            batch = record_batch(values, keys=keys)
        else:
            batch = record_batch(
                values, keys=keys, producer_id=producer_id, producer_epoch=0,
                attributes=TRANSACTIONAL_BIT,
            )  # fmt: skip
        data += stamp(memoryview(batch), offset, 0)
        first = offset
        if kind != "abort":
            for i, item in enumerate(records):
                committed[offset + i] = item
        offset += len(records)
        if kind != "plain":
            marker = marker_batch(producer_id, 0, kind == "commit", 1_700_000_000_000, 0)
            data += stamp(memoryview(marker), offset, 0)
            if kind == "abort":
                aborted.append(AbortedTxn(producer_id, first, offset))
            offset += 1
    return bytes(data), aborted, committed


def survivors(data: bytes) -> dict[int, tuple[bytes | None, bytes | None]]:
    out = {}
    position = 0
    while position < len(data):
        header = parse_header(data, position)
        batch = data[position : position + header.total_bytes]
        if not header.is_control:
            for r in read_records(batch, LIMIT)[1]:
                out[r.offset] = (r.key, r.value)
        position += header.total_bytes
    return out


def clean(data: bytes, aborted: list[AbortedTxn], now_ms: int) -> bytes:
    index = AbortedIndex(aborted)
    offset_map = OffsetMap(capacity=1 << 20)
    map_batches(data, offset_map, index, LIMIT)
    cleaned = clean_batches(data, offset_map, index, TransactionsSeen(), now_ms, RETENTION, LIMIT)
    return b"".join(cleaned.batches)


def latest_per_key(committed: dict[int, tuple[bytes, bytes | None]]) -> dict[bytes, int]:
    latest: dict[bytes, int] = {}
    for offset in sorted(committed):
        latest[committed[offset][0]] = offset
    return latest


@settings(max_examples=200, deadline=None)
@given(logs)
def test_survivors_are_the_latest_committed_record_per_key(entries: list) -> None:
    data, aborted, committed = build(entries)
    latest = latest_per_key(committed)

    once = clean(data, aborted, NOW)  # tombstones kept, their horizon set
    assert survivors(once) == {o: committed[o] for o in latest.values()}

    again = clean(once, aborted, NOW + RETENTION - 1)  # horizon not yet passed
    assert survivors(again) == survivors(once)

    after = clean(again, aborted, NOW + RETENTION)  # past the horizon: tombstones go
    expected = {o: committed[o] for o in latest.values() if committed[o][1] is not None}
    assert survivors(after) == expected
    assert_markers(entries, after, expected, empty_txns_gone=False)
    # A marker gets its own horizon from the first cleaning that finds no batch of its
    # transaction (Kafka's CleanedTransactionMetadata); one more past it drops it.
    settled = clean(after, aborted, NOW + 2 * RETENTION)
    final = clean(settled, aborted, NOW + 3 * RETENTION)
    assert survivors(final) == expected
    assert_markers(entries, final, expected, empty_txns_gone=True)
    # Cleaning is idempotent once nothing is left to drop.
    assert survivors(clean(final, aborted, NOW + 3 * RETENTION)) == expected


def assert_markers(
    entries: list,
    data: bytes,
    expected: dict[int, tuple[bytes, bytes | None]],
    *,
    empty_txns_gone: bool,
) -> None:
    """Offsets stay in order; every transaction that kept a record keeps its marker
    (read_committed readers need it), and once `empty_txns_gone`, no other marker is
    left."""
    position, last = 0, -1
    markers: set[int] = set()
    while position < len(data):
        header = parse_header(data, position)
        assert header.base_offset > last
        last = header.base_offset + header.last_offset_delta
        if header.is_control:
            batch = data[position : position + header.total_bytes]
            assert marker_type(batch) is not None, "a rewritten marker no longer reads as one"
            markers.add(header.producer_id)
        position += header.total_bytes
    kept = {committed_producer(entries, o) for o in expected} - {-1}
    assert kept <= markers, "a transaction's records outlived its marker"
    if empty_txns_gone:
        assert markers <= kept, "a marker outlived its transaction's records"


def committed_producer(entries: list, offset: int) -> int:
    position = 0
    for producer_id, (kind, records) in enumerate(entries, start=100):
        if position <= offset < position + len(records):
            return producer_id if kind != "plain" else -1
        position += len(records) + (kind != "plain")
    return -1


@pytest.mark.parametrize("codec", [GZIP, SNAPPY, LZ4, ZSTD])
def test_a_rewritten_batch_keeps_its_offsets_and_codec(codec: int) -> None:
    records_in = [b"1", b"2", b"3"] + [bytes([i % 7]) * 300 for i in range(600)]
    keys = [b"k", b"x", b"k"] + [b"big%d" % i for i in range(600)]
    batch = stamp(memoryview(record_batch(records_in, keys=keys)), 40, 3)
    header, records = read_records(batch, LIMIT)
    header.attributes |= codec
    rewritten = write_batch(header, records[1:])  # 180 KB: several snappy and lz4 blocks
    new_header, kept = read_records(rewritten, LIMIT)
    assert new_header.compression == codec
    assert (new_header.base_offset, new_header.last_offset_delta) == (40, 602)
    assert [(r.offset, r.key, r.value, r.timestamp) for r in kept[:2]] == [
        (41, b"x", b"2", records[1].timestamp),
        (42, b"k", b"3", records[2].timestamp),
    ]
    assert len(kept) == 602
    # An independent reader (the conformance harness's, over cramjam's frame decoders)
    # reads the same records.
    fetched = wire.decode_batches(rewritten)
    assert fetched[0].crc_ok and fetched[0].codec == CODEC_NAMES[codec]
    assert [r["offset"] for r in fetched[0].records] == list(range(41, 643))


def ranges(*specs: tuple[int, int, int, int]) -> list[RangeRecord]:
    return [RangeRecord(1, b, e, f"o{b}", 0, 100, ts, created) for b, e, ts, created in specs]


def test_the_active_segment_the_lso_and_the_minimum_lag_bound_the_cleanable_part() -> None:
    config = CleanerConfig(segment_ms=10, min_compaction_lag_ms=50)
    log = ranges((0, 10, 100, 0), (10, 20, 200, 20), (20, 30, 300, 40), (30, 40, 400, 60))
    # segments: [0], [10], [20], [30] (each range 20 ms after the last): [30, 40) active
    assert cleanable_end(log, 1_000, 1_000, config) == 30
    assert cleanable_end(log, 25, 1_000, config) == 20  # the LSO
    assert cleanable_end(log, 1_000, 260, config) == 20  # [20, 30) too new
    assert cleanable_end(log[:1], 1_000, 1_000, config) == 0  # only the active segment
    assert must_clean(log, 0, 30, 1_000, CleanerConfig(min_cleanable_dirty_ratio=1.0))
    assert not must_clean(log, 20, 30, 1_000, CleanerConfig(min_cleanable_dirty_ratio=0.5))
    forced = CleanerConfig(min_cleanable_dirty_ratio=0.9, max_compaction_lag_ms=500)
    assert must_clean(log, 20, 30, 1_000, forced)


def test_only_a_kept_tombstone_or_an_emptied_transaction_sets_a_delete_horizon() -> None:
    """Kafka's needToSetDeleteHorizon: a rewritten batch that keeps no tombstone, and the
    marker of a transaction that kept records, are written without a horizon."""
    entries = [
        ("plain", [(b"a", b"1"), (b"b", b"1")]),
        ("commit", [(b"c", b"1"), (b"d", b"1")]),
        ("abort", [(b"e", b"1")]),
        ("plain", [(b"a", b"2"), (b"d", b"2"), (b"f", None)]),
    ]
    data, aborted, _ = build(entries)
    once = clean(data, aborted, NOW)
    # [0,2) lost a; [2,4) the committed txn lost d; 4 its marker; 5 the aborted record
    # (gone); 6 its marker, not yet: this cleaning still found its batch; [7,10) keeps the
    # tombstone of f.
    assert horizons(once) == {0: False, 2: False, 4: False, 6: False, 7: True}
    assert horizons(clean(once, aborted, NOW)) == {0: False, 2: False, 4: False, 6: True, 7: True}


def horizons(data: bytes) -> dict[int, bool]:
    out: dict[int, bool] = {}
    position = 0
    while position < len(data):
        header = parse_header(data, position)
        out[header.base_offset] = delete_horizon(header) is not None
        position += header.total_bytes
    return out


def test_the_longest_delete_retention_keeps_a_tombstone_without_overflow() -> None:
    """delete.retention.ms=Long.MAX_VALUE, which Kafka accepts: now plus it is past a
    batch's 64-bit timestamp, and the rewrite of a batch keeping a tombstone failed (every
    cleaning of the partition, each round). The horizon is the latest time there is."""
    data, aborted, _ = build([("plain", [(b"a", b"1"), (b"a", b"2"), (b"b", None)])])
    index = AbortedIndex(aborted)
    offset_map = OffsetMap(capacity=1 << 20)
    map_batches(data, offset_map, index, LIMIT)
    cleaned = clean_batches(
        data, offset_map, index, TransactionsSeen(), NOW, 2**63 - 1, LIMIT
    ).batches
    header = parse_header(b"".join(cleaned))
    assert delete_horizon(header) == 2**63 - 1
    kept = [(r.key, r.value) for r in read_records(b"".join(cleaned), LIMIT)[1]]
    assert kept == [(b"a", b"2"), (b"b", None)]
