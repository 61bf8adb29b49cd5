"""Freshness: lag per partition against its high watermark, the age of the newest event
applied, which partitions a read fence is still waiting for, when a view is stale, and
the metrics that carry it."""

from __future__ import annotations

import dataclasses

from prometheus_client.parser import text_string_to_metric_families

from contextplane.services.context.ends import merged
from contextplane.services.context.freshness import (
    Freshness,
    PartitionFreshness,
    Position,
    freshness,
    is_stale,
    unmet,
)
from contextplane.services.context.metrics import render

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


def test_a_view_is_stale_only_when_behind_and_older_than_its_target() -> None:
    behind = freshness({("crm", 0): Position(1, NOW - 9_000)}, {("crm", 0): 5}, NOW)
    caught_up = freshness({("crm", 0): Position(5, NOW - 3_600_000)}, {("crm", 0): 5}, NOW)
    nothing_yet = freshness({("crm", 0): Position(0, None)}, {("crm", 0): 5}, NOW)
    unknown_end = freshness({("crm", 0): Position(1, NOW - 9_000)}, {}, NOW)
    assert is_stale(behind, 5_000)
    assert not is_stale(behind, 10_000)
    assert not is_stale(behind, None)  # no target, no alert
    assert not is_stale(caught_up, 5_000)  # nothing newer exists: an old event is current
    assert is_stale(nothing_yet, 5_000)
    assert not is_stale(unknown_end, 5_000)


def test_metrics_carry_lag_age_target_staleness_and_skips() -> None:
    fresh = freshness({("crm", 0): Position(1, NOW - 9_000)}, {("crm", 0): 5}, NOW)
    fresh = dataclasses.replace(fresh, target_ms=5_000, stale=True)
    text = render(
        {
            "applied_records": 12,
            "views": {"account": {"freshness": fresh, "skipped": {"value-not-json": 3}}},
        }
    )
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    account = (("view", "account"),)
    assert (
        samples[
            ("contextplane_context_lag_records", (("partition", "0"), ("topic", "crm"), *account))
        ]
        == 4
    )
    assert samples[("contextplane_context_age_seconds", account)] == 9
    assert samples[("contextplane_context_freshness_target_seconds", account)] == 5
    assert samples[("contextplane_context_stale", account)] == 1
    skipped = (("reason", "value-not-json"), *account)
    assert samples[("contextplane_context_skipped_records_total", skipped)] == 3
    assert samples[("contextplane_context_applied_records_total", ())] == 12
    assert "# TYPE contextplane_context_skipped_records_total counter" in text.splitlines()


def test_the_later_of_the_consumers_end_and_the_asked_one_counts() -> None:
    seen = {("t", 0): 10, ("t", 1): 7}
    asked = {("t", 0): 4, ("t", 1): 9, ("t", 2): 3}
    assert merged(seen, asked) == {("t", 0): 10, ("t", 1): 9, ("t", 2): 3}
    assert merged(seen, {}) == seen
