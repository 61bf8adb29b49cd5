"""The `__consumer_offsets` snapshots follow the topic's retention.ms but never run closer
together than a floor: a retention of 1 ms once made them a loop writing every live
offset back to back (about 20 MB/s until the disk filled)."""

from __future__ import annotations

from typing import Any, cast

import pytest

from contextplane.broker.offsets_topic import OffsetsTopicWriter
from contextplane.clock import ManualClock
from contextplane.limits import OFFSETS_SNAPSHOT_INTERVAL_MIN_MS
from contextplane.protocol.offsets_records import OFFSETS_TOPIC
from contextplane.settings import Settings


class _Topics:
    def __init__(self, retention_ms: str) -> None:
        self.retention_ms = retention_ms

    def configs(self, name: str) -> dict[str, str]:
        assert name == OFFSETS_TOPIC
        return {"retention.ms": self.retention_ms}


@pytest.mark.parametrize(
    ("retention_ms", "interval_ms"),
    [
        ("0", OFFSETS_SNAPSHOT_INTERVAL_MIN_MS),
        ("1", OFFSETS_SNAPSHOT_INTERVAL_MIN_MS),
        ("100000", OFFSETS_SNAPSHOT_INTERVAL_MIN_MS),
        ("604800000", 302_400_000),
        ("-1", None),
    ],
)
def test_snapshot_interval_is_half_the_retention_with_a_floor(
    retention_ms: str, interval_ms: int | None
) -> None:
    writer = OffsetsTopicWriter(
        cast(Any, None), cast(Any, _Topics(retention_ms)), Settings(), ManualClock()
    )
    assert writer._interval_ms() == interval_ms
