"""The `__consumer_offsets` snapshots follow the topic's retention.ms (when its policy lists
`delete`; compacted, as by default, it needs none), but never run closer
together than a floor nor write faster than a byte rate: a retention of 1 ms once made
them a loop writing every live offset back to back (about 20 MB/s until the disk filled)."""

from __future__ import annotations

from typing import Any, cast

import pytest

from contextplane.broker.offsets_topic import OffsetsTopicWriter
from contextplane.clock import ManualClock
from contextplane.limits import OFFSETS_SNAPSHOT_BYTES_PER_S, OFFSETS_SNAPSHOT_INTERVAL_MIN_MS
from contextplane.protocol.offsets_records import OFFSETS_TOPIC
from contextplane.settings import Settings


class _Topics:
    def __init__(self, retention_ms: str, policy: str) -> None:
        self.retention_ms = retention_ms
        self.policy = policy

    def configs(self, name: str) -> dict[str, str]:
        assert name == OFFSETS_TOPIC
        return {"retention.ms": self.retention_ms, "cleanup.policy": self.policy}


def _writer(retention_ms: str, policy: str = "compact,delete") -> OffsetsTopicWriter:
    topics = cast(Any, _Topics(retention_ms, policy))
    return OffsetsTopicWriter(cast(Any, None), topics, Settings(), ManualClock())


@pytest.mark.parametrize(
    ("retention_ms", "interval_ms"),
    [
        ("0", OFFSETS_SNAPSHOT_INTERVAL_MIN_MS),
        ("1", OFFSETS_SNAPSHOT_INTERVAL_MIN_MS),
        ("2000", OFFSETS_SNAPSHOT_INTERVAL_MIN_MS),
        ("604800000", 302_400_000),
        ("-1", None),
    ],
)
def test_snapshot_interval_is_half_the_retention_with_a_floor(
    retention_ms: str, interval_ms: int | None
) -> None:
    assert _writer(retention_ms)._interval_ms() == interval_ms


def test_a_large_snapshot_spaces_the_next_one_by_the_byte_rate() -> None:
    writer = _writer("1")
    writer._last_snapshot_bytes = 100 * OFFSETS_SNAPSHOT_BYTES_PER_S  # 100 s of writes
    assert writer._interval_ms() == 100_000


def test_a_compacted_topic_needs_no_periodic_snapshot() -> None:
    """Compaction keeps every key's newest record: retention.ms does not apply."""
    assert _writer("1", "compact")._interval_ms() is None
    assert _writer("1", "delete")._interval_ms() == OFFSETS_SNAPSHOT_INTERVAL_MIN_MS
