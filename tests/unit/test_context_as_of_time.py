"""`as_of` by timestamp without a broker: a time resolved to a vector as Kafka's
`offsets_for_times` bounds it (the first offset stamped after T, the end when there is
none), checked against a brute-force prefix rule over random logs; times refused; the
HTTP body's two shapes of `as_of`."""

from __future__ import annotations

import random

import pytest

from contextplane.services.context.app import point_in_time
from contextplane.services.context.as_of_time import bounds_at, check_timestamp
from contextplane.services.context.errors import ContextError

NOW = 1_800_000_000_000


def first_after(stamps: list[int], start: int, timestamp_ms: int) -> int:
    """What ListOffsets at T + 1 answers: the first retained offset stamped after T."""
    return next((o for o in range(start, len(stamps)) if stamps[o] > timestamp_ms), -1)


def test_the_bound_is_the_longest_prefix_stamped_up_to_t() -> None:
    rng = random.Random(15)
    for _ in range(200):
        logs = {
            ("t", p): sorted(rng.randrange(1000) for _ in range(rng.randrange(0, 12)))
            for p in range(3)
        }
        if rng.random() < 0.3:  # producers' clocks: not monotonic
            logs[("t", 0)] = [rng.randrange(1000) for _ in logs[("t", 0)]]
        timestamp_ms = rng.randrange(-1, 1001)
        ends = {tp: len(stamps) for tp, stamps in logs.items()}
        starts = dict.fromkeys(logs, 0)
        after = {tp: first_after(stamps, 0, timestamp_ms) for tp, stamps in logs.items()}
        vector = bounds_at(starts, ends, after)
        for tp, stamps in logs.items():
            prefix = 0
            while prefix < len(stamps) and stamps[prefix] <= timestamp_ms:
                prefix += 1
            assert vector[tp] == prefix, (stamps, timestamp_ms)
        assert list(vector) == sorted(logs)


def test_a_record_past_the_end_is_not_a_bound() -> None:
    # A lookup may name a record not yet decided (an open transaction's): the last
    # stable offset, asked before, bounds the partition instead.
    assert bounds_at({("t", 0): 0}, {("t", 0): 3}, {("t", 0): 3}) == {("t", 0): 3}
    assert bounds_at({("t", 0): 0}, {("t", 0): 3}, {("t", 0): 7}) == {("t", 0): 3}
    assert bounds_at({("t", 0): 0}, {("t", 0): 3}, {("t", 0): -1}) == {("t", 0): 3}
    assert bounds_at({("t", 0): 0}, {("t", 0): 3}, {("t", 0): 0}) == {("t", 0): 0}


def test_a_time_before_the_retained_log_is_refused() -> None:
    starts = {("t", 0): 4, ("t", 1): 2}
    ends = {("t", 0): 9, ("t", 1): 5}
    # t[0]: the first retained record is already after T: T fell among deleted records.
    with pytest.raises(ContextError) as refused:
        bounds_at(starts, ends, {("t", 0): 4, ("t", 1): 3})
    assert refused.value.status == 410
    assert refused.value.extra["deleted"] == [{"topic": "t", "partition": 0, "log_start": 4}]
    # Past the log start, or none after T at all: a bound (the vector read itself
    # refuses what it cannot read without the deleted records and a snapshot).
    assert bounds_at(starts, ends, {("t", 0): 5, ("t", 1): -1}) == {("t", 0): 5, ("t", 1): 5}
    # A partition whose records are all deleted: its end, whatever T.
    assert bounds_at({("t", 0): 6}, {("t", 0): 6}, {("t", 0): -1}) == {("t", 0): 6}


@pytest.mark.parametrize(
    ("timestamp_ms", "status", "kind"),
    [
        (-1, 400, "bad-as-of"),
        (2**63, 400, "bad-as-of"),
        (NOW, 409, "as-of-ahead"),
        (NOW + 3_600_000, 409, "as-of-ahead"),
        (2**63 - 1, 409, "as-of-ahead"),
    ],
)
def test_times_refused(timestamp_ms: int, status: int, kind: str) -> None:
    with pytest.raises(ContextError) as refused:
        check_timestamp(timestamp_ms, NOW)
    assert (refused.value.status, refused.value.kind) == (status, kind)


def test_times_taken() -> None:
    check_timestamp(0, NOW)
    check_timestamp(NOW - 1, NOW)


def test_the_body_names_a_vector_or_a_time() -> None:
    assert point_in_time(None) == (None, None)
    assert point_in_time({"timestamp_ms": 5}) == (None, 5)
    assert point_in_time({"timestamp_ms": -1}) == (None, -1)  # the range is the service's
    assert point_in_time({"crm.accounts": {"0": 4}}) == ({("crm.accounts", 0): 4}, None)
    # A topic named timestamp_ms maps to partitions: still a vector.
    assert point_in_time({"timestamp_ms": {"1": 2}}) == ({("timestamp_ms", 1): 2}, None)
    for bad in (
        {"timestamp_ms": "5"},
        {"timestamp_ms": 1.5},
        {"timestamp_ms": True},
        {"timestamp_ms": None},
        {"timestamp_ms": 5, "crm.accounts": {"0": 1}},
    ):
        with pytest.raises(ContextError) as refused:
            point_in_time(bad)
        assert (refused.value.status, refused.value.kind) == (400, "bad-request"), bad
