"""The share-partition state machine (KIP-932): acquire, acknowledge, release, lock
expiry, the delivery count limit, the SPSO, the in-flight bound, the stored form."""

from __future__ import annotations

import random

from contextplane.coordinators.share_partition import (
    AckType,
    Acquired,
    RecordState,
    Run,
    SharePartition,
    offsets_of,
)
from contextplane.protocol.error_codes import ErrorCode

LOCK_MS = 30_000


def _partition(start: int = 0, limit: int = 5, max_in_flight: int = 2000) -> SharePartition:
    return SharePartition(start, limit, max_in_flight, LOCK_MS)


def test_acquire_hands_records_once_and_counts_deliveries() -> None:
    p = _partition()
    assert p.next_fetch_offset() == 0
    assert p.acquire("a", range(0, 10), 4, now_ms=0) == [Acquired(0, 3, 1)]
    assert p.next_fetch_offset() == 4  # the SPEO: nothing AVAILABLE in flight
    # Another member reading the same batches gets only what is not acquired.
    assert p.acquire("b", range(0, 10), 100, now_ms=0) == [Acquired(4, 9, 1)]
    assert p.acquire("c", range(0, 10), 100, now_ms=0) == []
    assert (p.start_offset, p.end_offset) == (0, 10)


def test_accept_advances_the_start_over_the_done_prefix() -> None:
    p = _partition()
    p.acquire("a", range(0, 6), 6, now_ms=0)
    assert p.acknowledge("a", [(2, 3, (AckType.ACCEPT,))], 0) == ErrorCode.none
    assert p.start_offset == 0  # 0 and 1 are still acquired
    assert p.acknowledge("a", [(0, 1, (AckType.ACCEPT, AckType.REJECT))], 0) == ErrorCode.none
    assert p.start_offset == 4
    assert set(p.in_flight) == {4, 5}


def test_release_redelivers_with_a_higher_count_until_the_limit_archives() -> None:
    p = _partition(limit=3)
    for delivery in (1, 2, 3):
        assert p.next_fetch_offset() == 0
        assert p.acquire("a", [0], 1, now_ms=0) == [Acquired(0, 0, delivery)]
        assert p.acknowledge("a", [(0, 0, (AckType.RELEASE,))], 0) == ErrorCode.none
    # The third release reached the limit: archived, the start moves past it.
    assert p.start_offset == 1
    assert p.acquire("a", [0], 1, now_ms=0) == []


def test_acknowledging_what_another_member_holds_changes_nothing() -> None:
    p = _partition()
    p.acquire("a", range(0, 3), 3, now_ms=0)
    batches = [(0, 0, (AckType.ACCEPT,)), (1, 1, (AckType.ACCEPT,))]
    assert p.acknowledge("b", batches, 0) == ErrorCode.invalid_record_state
    # All or nothing: a valid batch before an invalid one is not applied.
    assert p.acknowledge("a", [(0, 0, (1,)), (5, 5, (1,))], 0) == ErrorCode.invalid_record_state
    assert p.in_flight[0].state == RecordState.ACQUIRED
    assert p.acknowledge("a", [(0, 2, (9,))], 0) == ErrorCode.invalid_request
    assert p.acknowledge("a", [(0, 2, (1, 1))], 0) == ErrorCode.invalid_request
    assert p.acknowledge("a", [(2, 0, (1,))], 0) == ErrorCode.invalid_request


def test_expired_locks_make_records_available_again() -> None:
    p = _partition(limit=2)
    p.acquire("a", range(0, 2), 2, now_ms=1_000)
    assert p.next_deadline() == 1_000 + LOCK_MS
    assert not p.expire_locks(1_000 + LOCK_MS - 1)
    assert p.expire_locks(1_000 + LOCK_MS)
    assert p.in_flight[0].state == RecordState.AVAILABLE
    assert p.acknowledge("a", [(0, 0, (AckType.ACCEPT,))], 0) == ErrorCode.invalid_record_state
    assert p.acquire("b", range(0, 2), 2, now_ms=50_000) == [Acquired(0, 1, 2)]
    # The second expiry reaches the limit of 2: archived, never offered again.
    p.expire_locks(50_000 + LOCK_MS)
    assert p.start_offset == 2 and not p.in_flight


def test_renew_extends_the_lock() -> None:
    p = _partition()
    p.acquire("a", [0], 1, now_ms=0)
    assert p.acknowledge("a", [(0, 0, (AckType.RENEW,))], 20_000) == ErrorCode.none
    assert not p.expire_locks(LOCK_MS)
    assert p.next_deadline() == 20_000 + LOCK_MS


def test_release_member_frees_only_its_records() -> None:
    p = _partition()
    p.acquire("a", range(0, 2), 2, now_ms=0)
    p.acquire("b", range(0, 4), 2, now_ms=0)
    assert p.release_member("a")
    assert not p.release_member("a")
    assert [p.in_flight[o].state for o in range(4)] == [RecordState.AVAILABLE] * 2 + [
        RecordState.ACQUIRED
    ] * 2
    assert p.next_fetch_offset() == 0


def test_in_flight_records_are_bounded() -> None:
    p = _partition(max_in_flight=5)
    assert p.acquire("a", range(0, 20), 100, now_ms=0) == [Acquired(0, 4, 1)]
    assert p.next_fetch_offset() is None
    p.acknowledge("a", [(0, 1, (AckType.ACCEPT,))], 0)
    assert p.next_fetch_offset() == 5
    assert p.acquire("a", range(5, 20), 100, now_ms=0) == [Acquired(5, 6, 1)]


def test_gaps_in_the_log_are_passed_over() -> None:
    p = _partition()
    # Batches 0-1 and 5-6: offsets 2-4 were compacted away.
    assert p.acquire("a", offsets_of([(0, 1), (5, 6)]), 10, now_ms=0) == [
        Acquired(0, 1, 1),
        Acquired(5, 6, 1),
    ]
    p.acknowledge("a", [(0, 1, (AckType.ACCEPT,))], 0)
    assert p.start_offset == 5


def test_stored_form_forgets_locks_and_keeps_delivery_counts() -> None:
    p = _partition()
    p.acquire("a", range(0, 6), 6, now_ms=0)
    p.acknowledge("a", [(1, 1, (AckType.ACCEPT,)), (3, 3, (AckType.RELEASE,))], 0)
    p.acquire("b", [3], 1, now_ms=0)
    runs = p.runs()
    assert runs == [
        Run(0, 0, RecordState.AVAILABLE, 1),
        Run(1, 1, RecordState.ACKNOWLEDGED, 1),
        Run(2, 2, RecordState.AVAILABLE, 1),
        Run(3, 3, RecordState.AVAILABLE, 2),
        Run(4, 5, RecordState.AVAILABLE, 1),
    ]
    loaded = SharePartition.load(p.start_offset, runs, 5, 2000, LOCK_MS)
    assert loaded.end_offset == 6
    assert loaded.acquire("c", range(0, 6), 10, now_ms=0) == [
        Acquired(0, 0, 2),
        Acquired(2, 2, 2),
        Acquired(3, 3, 3),
        Acquired(4, 5, 2),
    ]


def test_log_start_moving_past_the_start_drops_those_records() -> None:
    p = _partition()
    p.acquire("a", range(0, 4), 4, now_ms=0)
    p.move_start(2)
    assert p.start_offset == 2 and set(p.in_flight) == {2, 3}
    assert p.acknowledge("a", [(0, 0, (AckType.ACCEPT,))], 0) == ErrorCode.invalid_record_state


def test_random_runs_deliver_each_record_until_done() -> None:
    """Seeded random members acquire, acknowledge and expire: a record is never held by
    two members, an accepted one is never delivered again, and every record ends done."""
    for seed in range(20):
        rng = random.Random(seed)
        p = _partition(limit=4, max_in_flight=8)
        accepted: set[int] = set()
        now = 0
        end = 40
        for _ in range(2000):
            now += rng.randrange(0, 10_000)
            member = rng.choice("abc")
            start = p.next_fetch_offset()
            if start is not None and start < end:
                for got in p.acquire(member, range(start, min(end, start + 5)), 3, now):
                    for offset in range(got.first_offset, got.last_offset + 1):
                        assert offset not in accepted
            held = [
                o
                for o, r in p.in_flight.items()
                if r.state == RecordState.ACQUIRED and r.member_id == member
            ]
            for offset in held:
                kind = rng.choice([AckType.ACCEPT, AckType.RELEASE, AckType.REJECT, None])
                if kind is None:
                    continue
                assert p.acknowledge(member, [(offset, offset, (kind,))], now) == ErrorCode.none
                if kind == AckType.ACCEPT:
                    accepted.add(offset)
            p.expire_locks(now)
            assert len(p.in_flight) <= 8
            if p.start_offset == end:
                break
        for offset in range(p.start_offset):
            assert offset not in p.in_flight


def test_a_read_past_records_moves_the_end_over_offsets_without_records() -> None:
    p = _partition()
    # Offsets 0-1 are records, 2 a transaction marker: the read covered 0-2.
    assert p.acquire("a", [0, 1], 10, now_ms=0, read_end=3) == [Acquired(0, 1, 1)]
    assert p.end_offset == 3 and p.next_fetch_offset() == 3
    p.acknowledge("a", [(0, 1, (AckType.ACCEPT,))], 0)
    assert p.start_offset == 3
    # A read cut short by max_records does not move the end past what it did not take.
    assert p.acquire("a", [3, 4, 5], 1, now_ms=0, read_end=6) == [Acquired(3, 3, 1)]
    assert p.end_offset == 4


def test_acknowledgements_are_bounded_by_what_can_be_in_flight() -> None:
    p = _partition(max_in_flight=100)
    p.acquire("a", range(10), 10, now_ms=0)
    # A batch naming 2^62 offsets is refused before any is walked.
    huge = [(0, 2**62, (AckType.ACCEPT,))]
    assert p.acknowledge("a", huge, 0) == ErrorCode.invalid_record_state
    # So are batches that together name more: here the second is not walked.
    many = [(0, 9, (AckType.ACCEPT,)), (10**6, 10**6 + 99, (AckType.ACCEPT,))]
    assert p.acknowledge("a", many, 0) == ErrorCode.invalid_record_state
    twice = [(0, 1, (AckType.ACCEPT,)), (1, 1, (AckType.RELEASE,))]
    assert p.acknowledge("a", twice, 0) == ErrorCode.invalid_request
    assert p.in_flight[0].state == RecordState.ACQUIRED


def test_a_lowered_in_flight_bound_keeps_what_was_stored() -> None:
    """share.partition.max.record.locks lowered (or its override capped by a lowered
    group.share.max.partition.max.record.locks) before a restart: the stored records past
    the new bound were dropped, so acknowledged ones were delivered again and the others
    started over at delivery count 0. Kafka loads every stored record; the bound holds
    back only new acquisitions."""
    p = _partition(max_in_flight=4000)
    p.acquire("a", range(0, 4000), 4000, now_ms=0)
    p.acknowledge("a", [(2000, 3999, (AckType.ACCEPT,))], 0)
    loaded = SharePartition.load(p.start_offset, p.runs(), 5, 100, LOCK_MS)
    assert loaded.end_offset == 4000
    assert loaded.acquire("c", range(0, 4000), 10_000, now_ms=0) == [Acquired(0, 1999, 2)]
    assert loaded.next_fetch_offset() is None  # past the bound: nothing new acquired
    loaded.acknowledge("c", [(0, 1999, (AckType.ACCEPT,))], 0)
    assert (loaded.start_offset, loaded.next_fetch_offset()) == (4000, 4000)
