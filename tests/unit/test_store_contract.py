"""The metadata store's contract, method by method, on every engine (SQLite and
PostgreSQL, through `metadata_url`): what one call stores, the next reads back, after a
reopen where it matters."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from contextplane.errors import KafkaError
from contextplane.metadata.records import (
    ClientQuotaRecord,
    CommittedOffset,
    ObjectCommit,
    ObjectUsage,
    OffsetRow,
    ProducerRow,
    ProducerStateDelta,
    RangeCommit,
    RangeRecord,
    RangeSummary,
    RangeSwap,
    TransactionRecord,
)
from contextplane.protocol.error_codes import ErrorCode
from tests.support.metadata import open_engine

if TYPE_CHECKING:
    from contextplane.metadata.sql_engine import SqlEngine


@pytest.fixture
def engine(metadata_url: str) -> Iterator[SqlEngine]:
    engine = open_engine(metadata_url)
    yield engine
    engine.close()


def led_stream(engine: SqlEngine, topic: str = "t", partitions: int = 1) -> tuple[int, int]:
    """A new topic's first partition, led by node 1: (stream id, epoch)."""
    engine.create_topic(topic, partitions, {})
    first = engine.partitions(topic)[0]
    claimed = engine.claim_leadership({first.stream_id: first.leader_epoch}, 1).claimed
    return first.stream_id, claimed[first.stream_id]


def commit(engine: SqlEngine, key: str, stream: int, epoch: int, base: int, end: int) -> None:
    ranges = [RangeCommit(stream, base, end, 0, 100, 7)]
    outcome = engine.commit_object(ObjectCommit(key, 100, 1_000, ranges, {stream: epoch}, {}))
    assert outcome.committed == {stream}


def test_cluster_id_and_counters_are_durable(metadata_url: str) -> None:
    engine = open_engine(metadata_url)
    cluster = engine.cluster_id()
    assert engine.next_counter("pid") == 0
    assert engine.next_counter("pid", 10) == 1
    engine.close()
    engine = open_engine(metadata_url)
    assert engine.cluster_id() == cluster
    assert engine.next_counter("pid") == 11
    assert engine.next_counter("other") == 0
    engine.close()


def test_topics_are_created_once_grown_configured_and_deleted(engine: SqlEngine) -> None:
    created = engine.create_topic("a", 2, {"cleanup.policy": "compact"})
    with pytest.raises(KafkaError) as refused:
        engine.create_topic("a", 1, {})
    assert refused.value.code == ErrorCode.topic_already_exists
    assert [t.name for t in engine.create_topics(["a", "b", "b"], 3, {})] == ["b"]
    engine.add_partitions("a", 4)
    engine.set_topic_configs("a", {"retention.ms": "5"})
    topics = {t.name: t for t in engine.topics()}
    assert topics["a"].topic_id == created.topic_id and isinstance(created.topic_id, bytes)
    assert (topics["a"].partitions, topics["a"].configs) == (4, {"retention.ms": "5"})
    assert topics["b"].partitions == 3
    assert [p.partition for p in engine.partitions("a")] == [0, 1, 2, 3]
    assert engine.delete_topic("a", 9) == []
    assert [t.name for t in engine.topics()] == ["b"]


def test_leadership_claims_are_compare_and_set(engine: SqlEngine) -> None:
    stream, epoch = led_stream(engine)
    again = engine.claim_leadership({stream: epoch - 1}, 2)  # a stale read of the epoch
    assert again.claimed == {} and again.moved == {stream: epoch}
    (record,) = engine.partitions("t")
    assert (record.leader_node, record.leader_epoch) == (1, epoch)


def test_a_commit_with_a_stale_leader_epoch_is_refused(engine: SqlEngine) -> None:
    stream, epoch = led_stream(engine)
    engine.claim_leadership({stream: epoch}, 2)  # another broker takes over
    outcome = engine.commit_object(
        ObjectCommit("late", 10, 1, [RangeCommit(stream, 0, 5, 0, 10, 1)], {stream: epoch}, {})
    )
    assert outcome.committed == set() and outcome.epoch_mismatch == {stream: epoch + 1}
    assert engine.ranges_by_stream() == {}
    assert engine.known_objects(["late"]) == set()


def test_a_commit_retried_after_its_reply_was_lost_publishes_nothing_twice(
    engine: SqlEngine,
) -> None:
    """The uploader retries a commit whose outcome it could not learn with the same key:
    a commit that had landed is recognised (its streams reported committed, the object
    published), not inserted again, even once its epoch moved or its object is queued
    for deletion."""
    stream, epoch = led_stream(engine)
    other, other_epoch = led_stream(engine, "u")
    ranges = [RangeCommit(stream, 0, 5, 0, 10, 1), RangeCommit(other, 0, 3, 10, 10, 1)]
    sent = ObjectCommit("o1", 20, 1, ranges, {stream: epoch, other: other_epoch}, {})
    assert engine.commit_object(sent).committed == {stream, other}
    again = engine.commit_object(sent)
    assert again.replayed and again.object_published
    assert again.committed == {stream, other}
    engine.claim_leadership({other: other_epoch}, 2)  # another broker takes "u" over
    moved = engine.commit_object(sent)
    assert moved.committed == {stream} and moved.epoch_mismatch == {other: other_epoch + 1}
    assert moved.object_published
    assert {s: [r.object_key for r in rs] for s, rs in engine.ranges_by_stream().items()} == {
        stream: ["o1"],
        other: ["o1"],
    }
    engine.delete_topic("t", 9)
    engine.delete_topic("u", 9)  # the object waits for deletion now
    gone = engine.commit_object(sent)
    assert gone.deleted == {stream, other} and gone.object_published
    assert engine.ranges_by_stream() == {}
    # A new key is a new commit, as before.
    fresh, fresh_epoch = led_stream(engine, "v")
    first = ObjectCommit(
        "o2", 10, 1, [RangeCommit(fresh, 0, 5, 0, 10, 1)], {fresh: fresh_epoch}, {}
    )
    assert engine.commit_object(first).replayed is False


def test_retention_queues_unreferenced_objects_until_forgotten(engine: SqlEngine) -> None:
    stream, epoch = led_stream(engine)
    commit(engine, "o1", stream, epoch, 0, 10)
    commit(engine, "o2", stream, epoch, 10, 20)
    assert engine.ranges_by_stream() == {
        stream: [
            RangeRecord(stream, 0, 10, "o1", 0, 100, 7, 1_000),
            RangeRecord(stream, 10, 20, "o2", 0, 100, 7, 1_000),
        ]
    }
    assert engine.advance_log_start(stream, 12, 5_000) == ["o1"]
    assert engine.advance_log_start(stream, 3, 6_000) == []  # never moves back
    assert engine.partitions("t")[0].log_start_offset == 12
    assert engine.known_objects(["o1", "o2", "never"]) == {"o1", "o2"}
    assert engine.next_deletion_due() == 5_000
    assert engine.due_deletions(4_999, 10) == []
    assert engine.due_deletions(5_000, 10) == ["o1"]
    engine.forget_deletions(["o1"])
    assert engine.next_deletion_due() is None
    assert engine.delete_topic("t", 7_000) == ["o2"]


def test_one_streams_ranges_and_every_streams_summary(engine: SqlEngine) -> None:
    stream, epoch = led_stream(engine, partitions=3)
    second = engine.partitions("t")[1]
    other = second.stream_id
    other_epoch = engine.claim_leadership({other: second.leader_epoch}, 1).claimed[other]
    assert engine.ranges_of(stream) == [] and engine.range_summaries() == {}
    ranges = [RangeCommit(stream, 0, 10, 0, 100, 7), RangeCommit(other, 0, 4, 100, 40, 3)]
    epochs = {stream: epoch, other: other_epoch}
    engine.commit_object(ObjectCommit("o1", 140, 1_000, ranges, epochs, {}))
    ranges = [RangeCommit(stream, 10, 25, 0, 150, 9)]
    engine.commit_object(ObjectCommit("o2", 150, 2_000, ranges, {stream: epoch}, {}))
    assert engine.ranges_of(stream) == [
        RangeRecord(stream, 0, 10, "o1", 0, 100, 7, 1_000),
        RangeRecord(stream, 10, 25, "o2", 0, 150, 9, 2_000),
    ]
    assert engine.ranges_of(other) == [RangeRecord(other, 0, 4, "o1", 100, 40, 3, 1_000)]
    assert engine.range_summaries() == {
        stream: RangeSummary(stream, 25, -1, 2, 7),
        other: RangeSummary(other, 4, -1, 1, 3),
    }  # the third stream has no ranges: left out
    engine.advance_log_start(stream, 10, 5_000)
    assert engine.range_summaries()[stream] == RangeSummary(stream, 25, -1, 1, 9)
    assert [r.base_offset for r in engine.ranges_of(stream)] == [10]


def test_a_summary_counts_two_or_more_ranges_as_two(engine: SqlEngine) -> None:
    # Start-up reads each partition's first and last range only, so it does not grow
    # with the rows retained; retention and the cleaner ask only 0, 1 or "two or more".
    stream, epoch = led_stream(engine)
    for number in range(5):
        ranges = [RangeCommit(stream, 10 * number, 10 * number + 10, 0, 100, 100 + number)]
        engine.commit_object(ObjectCommit(f"o{number}", 100, 1_000, ranges, {stream: epoch}, {}))
    assert engine.range_summaries() == {stream: RangeSummary(stream, 50, -1, 2, 100)}
    engine.advance_log_start(stream, 40, 5_000)
    assert engine.range_summaries() == {stream: RangeSummary(stream, 50, -1, 1, 104)}


def test_object_usage_counts_objects_in_all_and_per_topic(engine: SqlEngine) -> None:
    assert engine.object_usage() == ObjectUsage(0, 0, {})
    stream, epoch = led_stream(engine, "a")
    other, other_epoch = led_stream(engine, "b")
    both = [RangeCommit(stream, 0, 10, 0, 100, 7), RangeCommit(other, 0, 4, 100, 40, 3)]
    engine.commit_object(
        ObjectCommit("o1", 150, 1_000, both, {stream: epoch, other: other_epoch}, {})
    )
    one = [RangeCommit(stream, 10, 25, 0, 60, 9)]
    engine.commit_object(ObjectCommit("o2", 70, 2_000, one, {stream: epoch}, {}))
    # An object holding both topics counts for each; bytes are the ranges', the total the
    # objects' own (their framing too).
    assert engine.object_usage() == ObjectUsage(2, 220, {"a": (2, 160), "b": (1, 40)})
    engine.advance_log_start(stream, 10, 5_000)  # o1 keeps b's range: still referenced
    assert engine.object_usage() == ObjectUsage(2, 220, {"a": (1, 60), "b": (1, 40)})


def test_producer_state_rows_follow_the_commits(engine: SqlEngine) -> None:
    stream, epoch = led_stream(engine)
    rows = [ProducerRow(7, 2, [(0, 4, 10, 14, 1_000)], None), ProducerRow(9, None, [], 3)]
    engine.commit_object(
        ObjectCommit("p1", 10, 1, [RangeCommit(stream, 0, 5, 0, 10, 1)], {stream: epoch},
                     {stream: ProducerStateDelta(rows, [], [(8, 1, 4)], 0)})
    )  # fmt: skip
    stored = engine.partitions("t")[0].producer_state.producers
    assert sorted(stored, key=lambda r: r.producer_id) == rows
    assert engine.partitions("t")[0].producer_state.aborted == [(8, 1, 4)]
    engine.commit_object(
        ObjectCommit("p2", 10, 1, [RangeCommit(stream, 5, 9, 0, 10, 1)], {stream: epoch},
                     {stream: ProducerStateDelta([ProducerRow(7, 3, [], None)], [9], [], 5)})
    )  # fmt: skip
    (record,) = engine.partitions("t")
    assert record.producer_state.producers == [ProducerRow(7, 3, [], None)]
    assert record.producer_state.aborted == []  # its last offset (4) is below the log start (5)


def test_group_offsets_are_upserted_fetched_and_deleted(engine: SqlEngine) -> None:
    engine.commit_offsets("g", [OffsetRow("t", 0, 5, 1, "m"), OffsetRow("t", 1, 6, -1, None)], 10)
    engine.commit_offsets("g", [OffsetRow("t", 0, 8, 2, None)], 11)
    engine.commit_offsets("h", [OffsetRow("u", 0, 1, -1, None)], 12)
    assert engine.fetch_offsets("g") == {
        ("t", 0): CommittedOffset(8, 2, None, 11),
        ("t", 1): CommittedOffset(6, -1, None, 10),
    }
    assert sorted(engine.groups_with_offsets()) == ["g", "h"]
    engine.delete_offsets("g", [("t", 1)])
    assert list(engine.fetch_offsets("g")) == [("t", 0)]
    engine.delete_topic_offsets("u")
    engine.delete_offsets("g", None)
    assert engine.groups_with_offsets() == []


def test_a_transaction_lives_commits_its_offsets_and_is_removed(engine: SqlEngine) -> None:
    record = TransactionRecord("tx", 4, 0, 60_000, "Ongoing", 1, partitions={("t", 0): False})
    engine.save_transaction(record)
    grown = TransactionRecord(
        "tx", 4, 0, 60_000, "Ongoing", 2, partitions={("t", 0): True, ("t", 1): False},
        groups={"g"},
    )  # fmt: skip
    engine.save_transaction(grown, record)
    assert engine.transactions() == [grown]
    engine.add_txn_offsets("tx", "g", [OffsetRow("t", 0, 42, 3, "m")])
    assert engine.pending_txn_offsets() == [("tx", "g", "t", 0)]
    done = TransactionRecord("tx", 4, 0, 60_000, "CompleteCommit", 3)
    assert engine.complete_transaction(done, True, 99) == {"g": [OffsetRow("t", 0, 42, 3, "m")]}
    assert engine.fetch_offsets("g") == {("t", 0): CommittedOffset(42, 3, "m", 99)}
    assert engine.pending_txn_offsets() == [] and engine.transactions() == [done]
    engine.remove_transaction("tx")
    assert engine.transactions() == []


def test_client_quotas_are_set_and_removed(engine: SqlEngine) -> None:
    entity = (("user", "alice"), ("client-id", None))
    engine.alter_client_quotas([ClientQuotaRecord(entity, "producer_byte_rate", 1_048_576.5)])
    assert engine.client_quotas() == [ClientQuotaRecord(entity, "producer_byte_rate", 1_048_576.5)]
    engine.alter_client_quotas([ClientQuotaRecord(entity, "producer_byte_rate", None)])
    assert engine.client_quotas() == []


def test_the_cleaner_swap_replaces_ranges_and_keeps_its_state(engine: SqlEngine) -> None:
    stream, epoch = led_stream(engine)
    commit(engine, "d1", stream, epoch, 0, 10)
    commit(engine, "d2", stream, epoch, 10, 20)
    swap = RangeSwap(
        stream, epoch, 0, 20, [(0, "d1"), (10, "d2")], "clean", 50, 2_000,
        [RangeCommit(stream, 0, 20, 0, 50, 7)], 8_000, {"first_dirty": 20},
    )  # fmt: skip
    assert engine.swap_ranges(swap)
    assert not engine.swap_ranges(swap)  # the ranges it read are gone
    assert [r.object_key for r in engine.ranges_by_stream()[stream]] == ["clean"]
    assert sorted(engine.due_deletions(8_000, 10)) == ["d1", "d2"]
    assert engine.cleaner_states()[stream] == {"first_dirty": 20}
