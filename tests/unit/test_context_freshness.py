"""Freshness: lag per partition against its high watermark, the age of the newest event
applied, and which partitions a read fence is still waiting for."""

from __future__ import annotations

from contextplane.services.context.freshness import (
    Freshness,
    PartitionFreshness,
    Position,
    freshness,
    unmet,
)

NOW = 1_700_000_100_000


def test_lag_is_the_distance_to_each_high_watermark_and_age_the_newest_event() -> None:
    positions = {
        ("crm", 0): Position(10, NOW - 5_000),
        ("crm", 1): Position(3, NOW - 60_000),
        ("tickets", 0): Position(0, None),
    }
    watermarks = {("crm", 0): 12, ("crm", 1): 3, ("tickets", 0): 4}
    assert freshness(positions, watermarks, NOW) == Freshness(
        age_ms=5_000,
        newest_event_ms=NOW - 5_000,
        lag=6,
        partitions=(
            PartitionFreshness("crm", 0, 10, 12, 2),
            PartitionFreshness("crm", 1, 3, 3, 0),
            PartitionFreshness("tickets", 0, 0, 4, 4),
        ),
    )


def test_an_unknown_end_makes_the_total_lag_unknown() -> None:
    fresh = freshness(
        {("crm", 0): Position(1, NOW), ("crm", 1): Position(0, None)}, {("crm", 0): 1}, NOW
    )
    assert fresh.lag is None
    assert [p.lag for p in fresh.partitions] == [0, None]


def test_nothing_applied_has_no_age_and_a_future_timestamp_no_negative_age() -> None:
    assert freshness({("crm", 0): Position(0, None)}, {}, NOW).age_ms is None
    assert freshness({("crm", 0): Position(1, NOW + 9_000)}, {}, NOW).age_ms == 0
    # A watermark a fetch reported before the apply loop's newest position: no negative lag.
    assert freshness({("crm", 0): Position(5, NOW)}, {("crm", 0): 4}, NOW).lag == 0


def test_a_fence_is_met_once_the_record_at_each_offset_is_applied() -> None:
    positions = {("crm", 0): Position(10, NOW), ("crm", 1): Position(3, NOW)}
    assert unmet(positions, {("crm", 0): 9, ("crm", 1): 2}) == {}
    assert unmet(positions, {("crm", 0): 10, ("crm", 1): 2}) == {("crm", 0): 10}
    # A partition nothing was applied from is at position 0.
    assert unmet(positions, {("tickets", 0): 0}) == {("tickets", 0): 0}
