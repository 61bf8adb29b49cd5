"""`swap_objects`, object compaction's swap: every outcome of its checks (an epoch moved,
retention or the cleaner moved a stream's ranges, a topic deleted, all kept, none kept),
and after each the log and the objects are whole: every offset of every stream covered by
exactly one range, every object referenced, queued for deletion, or refused (the caller
deletes it)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from contextplane.metadata.records import (
    CompactedObject,
    CompactedRange,
    ObjectCommit,
    ObjectSwap,
    RangeCommit,
    RangeRecord,
    RangeSwap,
    SwapOutcome,
)
from tests.support.metadata import open_engine

if TYPE_CHECKING:
    from contextplane.metadata.sql_engine import SqlEngine

DUE_MS = 5_000
RECORDS_PER_RANGE = 10
RANGE_BYTES = 100


@pytest.fixture
def engine(metadata_url: str) -> Iterator[SqlEngine]:
    engine = open_engine(metadata_url)
    engine.create_topic("a", 1, {})
    engine.create_topic("b", 1, {})
    streams = {p.stream_id: p.leader_epoch for p in engine.partitions()}
    engine.claim_leadership(streams, 0)
    # Three uploads, each with a range of both streams.
    for number in range(3):
        base = number * RECORDS_PER_RANGE
        engine.commit_object(
            ObjectCommit(
                key=f"up-{number}",
                size=len(streams) * RANGE_BYTES + 50,
                created_ms=1_000 + number,
                ranges=[
                    RangeCommit(
                        stream, base, base + RECORDS_PER_RANGE, i * RANGE_BYTES, RANGE_BYTES,
                        10_000 + base,
                    )
                    for i, stream in enumerate(sorted(streams))
                ],
                epochs=epochs(engine),
                producer_states={},
            )
        )  # fmt: skip
    yield engine
    engine.close()


def epochs(engine: SqlEngine) -> dict[int, int]:
    return {p.stream_id: p.leader_epoch for p in engine.partitions()}


def stream_of(engine: SqlEngine, topic: str) -> int:
    return engine.partitions(topic)[0].stream_id


def merged_swap(engine: SqlEngine) -> tuple[ObjectSwap, set[str]]:
    """What the compactor would swap after reading the store now: every stream's ranges
    merged into one range each of one output object."""
    by_stream = engine.ranges_by_stream()
    ranges = []
    position = 0
    for stream, records in sorted(by_stream.items()):
        size = sum(r.size for r in records)
        ranges.append(
            CompactedRange(
                stream, records[0].base_offset, records[-1].end_offset, position, size,
                max(r.max_timestamp for r in records), records[0].created_ms,
                tuple((r.base_offset, r.object_key) for r in records),
            )
        )  # fmt: skip
        position += size
    output = CompactedObject("merged", position + 50, 1_000, 1, ranges)
    inputs = {r.object_key for records in by_stream.values() for r in records}
    return ObjectSwap([output], epochs(engine), DUE_MS), inputs


def keys(engine: SqlEngine, table: str) -> set[str]:
    return {r[0] for r in engine._db.execute(f"SELECT key FROM {table}")}  # noqa: S608


def assert_whole(
    engine: SqlEngine,
    offsets: dict[int, tuple[int, int]],
    every_key: set[str],
    outcome: SwapOutcome,
) -> None:
    """Each stream's ranges cover [start, end) of `offsets`, each offset once; every key
    is referenced, queued for deletion or refused, and no key is two of those."""
    by_stream = engine.ranges_by_stream()
    for stream, (start, end) in offsets.items():
        records: list[RangeRecord] = by_stream.get(stream, [])
        covered = start
        for record in records:
            assert record.base_offset == covered, (stream, records)
            covered = record.end_offset
        assert covered == end, (stream, records)
    referenced = keys(engine, "objects")
    assert referenced == {r.object_key for rs in by_stream.values() for r in rs}
    queued = keys(engine, "objects_to_delete")
    refused = set(outcome.refused)
    assert referenced | queued | refused == every_key
    assert not (referenced & queued or referenced & refused or queued & refused)


def test_all_streams_kept(engine: SqlEngine) -> None:
    swap, inputs = merged_swap(engine)
    outcome = engine.swap_objects(swap)
    assert outcome.swapped == {stream_of(engine, "a"), stream_of(engine, "b")}
    assert outcome.inserted == ["merged"] and not outcome.refused
    assert set(outcome.unreferenced) == inputs
    full = {stream: (0, 30) for stream in outcome.swapped}
    assert_whole(engine, full, inputs | {"merged"}, outcome)
    for records in engine.ranges_by_stream().values():
        assert [(r.base_offset, r.end_offset, r.object_key, r.created_ms) for r in records] == [
            (0, 30, "merged", 1_000)
        ]
        assert records[0].max_timestamp == 10_020
    row = engine._db.execute("SELECT level, streams FROM objects WHERE key='merged'").fetchone()
    assert tuple(row) == (1, 2)
    due = engine._db.execute("SELECT DISTINCT due_ms FROM objects_to_delete").fetchall()
    assert [tuple(r) for r in due] == [(DUE_MS,)]


def test_epoch_moved_leaves_the_stream_out(engine: SqlEngine) -> None:
    swap, inputs = merged_swap(engine)
    a, b = stream_of(engine, "a"), stream_of(engine, "b")
    engine.claim_leadership({a: epochs(engine)[a]}, 1)  # another leader took `a`
    outcome = engine.swap_objects(swap)
    assert outcome.swapped == {b} and outcome.epoch_moved == {a}
    assert outcome.inserted == ["merged"]
    assert not outcome.unreferenced  # every input still holds a range of `a`
    by_stream = engine.ranges_by_stream()
    assert [r.object_key for r in by_stream[a]] == ["up-0", "up-1", "up-2"]
    assert [r.object_key for r in by_stream[b]] == ["merged"]
    assert_whole(engine, {a: (0, 30), b: (0, 30)}, inputs | {"merged"}, outcome)


def test_retention_moved_between_read_and_swap(engine: SqlEngine) -> None:
    swap, inputs = merged_swap(engine)
    a, b = stream_of(engine, "a"), stream_of(engine, "b")
    engine.advance_log_start(a, 10, DUE_MS)  # drops a's range in up-0
    outcome = engine.swap_objects(swap)
    assert outcome.swapped == {b} and outcome.ranges_moved == {a}
    assert outcome.unreferenced == ["up-0"]  # b's range of it was swapped, a's retained away
    assert_whole(engine, {a: (10, 30), b: (0, 30)}, inputs | {"merged"}, outcome)


def test_cleaner_swapped_one_stream(engine: SqlEngine) -> None:
    swap, inputs = merged_swap(engine)
    a, b = stream_of(engine, "a"), stream_of(engine, "b")
    cleaned = RangeSwap(
        stream_id=a, epoch=epochs(engine)[a], base_offset=0, end_offset=20,
        replaced=[(0, "up-0"), (10, "up-1")], key="cleaned", size=150, created_ms=1_000,
        ranges=[RangeCommit(a, 5, 20, 0, 150, 10_010)], delete_due_ms=DUE_MS, cleaner_state={},
    )  # fmt: skip
    assert engine.swap_ranges(cleaned)
    outcome = engine.swap_objects(swap)
    assert outcome.swapped == {b} and outcome.ranges_moved == {a}
    by_stream = engine.ranges_by_stream()
    assert [r.object_key for r in by_stream[a]] == ["cleaned", "up-2"]
    row = engine._db.execute("SELECT level, streams FROM objects WHERE key='cleaned'").fetchone()
    assert tuple(row) == (1, 1)
    every = inputs | {"merged", "cleaned"}
    assert_whole(engine, {a: (5, 30), b: (0, 30)}, every, outcome)


def test_no_stream_kept_refuses_the_output(engine: SqlEngine) -> None:
    swap, inputs = merged_swap(engine)
    a, b = stream_of(engine, "a"), stream_of(engine, "b")
    engine.claim_leadership(epochs(engine), 1)
    before = engine.ranges_by_stream()
    outcome = engine.swap_objects(swap)
    assert not outcome.swapped and outcome.epoch_moved == {a, b}
    assert outcome.refused == ["merged"] and not outcome.inserted
    assert engine.ranges_by_stream() == before
    assert_whole(engine, {a: (0, 30), b: (0, 30)}, inputs | {"merged"}, outcome)


def test_an_output_of_streams_left_out_only_is_refused(engine: SqlEngine) -> None:
    """Two outputs, one per stream: `a`'s epoch moved, so its output is not inserted
    while `b`'s is."""
    swap, inputs = merged_swap(engine)
    a, b = stream_of(engine, "a"), stream_of(engine, "b")
    (output,) = swap.outputs
    swap.outputs = [
        CompactedObject(f"only-{s}", 150, 1_000, 1, [r for r in output.ranges if r.stream_id == s])
        for s in (a, b)
    ]
    engine.claim_leadership({a: epochs(engine)[a]}, 1)
    outcome = engine.swap_objects(swap)
    assert outcome.inserted == [f"only-{b}"] and outcome.refused == [f"only-{a}"]
    every = inputs | {f"only-{a}", f"only-{b}"}
    assert_whole(engine, {a: (0, 30), b: (0, 30)}, every, outcome)


def test_deleted_topic_is_left_out(engine: SqlEngine) -> None:
    swap, inputs = merged_swap(engine)
    a, b = stream_of(engine, "a"), stream_of(engine, "b")
    engine.delete_topic("a", DUE_MS)
    outcome = engine.swap_objects(swap)
    assert outcome.swapped == {b} and outcome.epoch_moved == {a}
    assert set(outcome.unreferenced) == inputs  # a's ranges left with its topic
    assert_whole(engine, {b: (0, 30)}, inputs | {"merged"}, outcome)


def test_candidates_are_old_uploads_small_compacted_and_sparse_objects(engine: SqlEngine) -> None:
    assert [o.key for o in engine.compaction_candidates(1_001, 0.5, 10, 0)] == ["up-0", "up-1"]
    assert [o.key for o in engine.compaction_candidates(1_001, 0.5, 1, 0)] == ["up-0"]
    swap, _ = merged_swap(engine)
    engine.swap_objects(swap)
    (merged,) = swap.outputs
    # Level 1 and full: a candidate only while smaller than the small bound.
    assert engine.compaction_candidates(10_000, 0.5, 10, merged.size) == []
    (small,) = engine.compaction_candidates(10_000, 0.5, 10, merged.size + 1)
    assert small.key == "merged" and len(small.ranges) == 2
    a = stream_of(engine, "a")
    engine.advance_log_start(a, 30, DUE_MS)  # half of `merged` is dead now
    (sparse,) = engine.compaction_candidates(10_000, 0.51, 10, 0)
    assert sparse.key == "merged" and sparse.level == 1 and sparse.streams == 2
    assert sparse.live_bytes == 3 * RANGE_BYTES
    assert engine.compaction_candidates(10_000, 0.4, 10, 0) == []
    # Both small and sparse: listed once.
    assert len(engine.compaction_candidates(10_000, 0.51, 10, merged.size + 1)) == 1
