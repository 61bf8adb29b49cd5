"""How fresh a view is: pure arithmetic over what the apply loop knows (RFC 0006 §1).

`position` is Kafka's: the offset of the next record to apply. `high_watermark` is the
partition's end as the apply loop's last fetch saw it; lag is their difference. Age is
now minus the timestamp of the newest source record the view applied (producer time, or
the broker's for LogAppendTime topics); a clock ahead of ours counts as age 0.
"""

from __future__ import annotations

from dataclasses import dataclass

TopicPartition = tuple[str, int]


@dataclass(frozen=True)
class Position:
    position: int  # the next offset to apply
    newest_ms: int | None  # the newest timestamp among records applied, None before any


@dataclass(frozen=True)
class PartitionFreshness:
    topic: str
    partition: int
    position: int
    high_watermark: int | None  # None until a fetch has reported it
    lag: int | None


@dataclass(frozen=True)
class Freshness:
    age_ms: int | None
    newest_event_ms: int | None
    lag: int | None  # the sum over partitions; None while any partition's end is unknown
    partitions: tuple[PartitionFreshness, ...]
    target_ms: int | None = None  # the view's freshness target, if it has one
    stale: bool = False


def is_stale(fresh: Freshness, target_ms: int | None) -> bool:
    """Behind its sources (lag > 0) and what it has applied is older than the target (or
    nothing is applied yet). A view that is caught up is never stale, however old its
    newest event: nothing newer exists."""
    if target_ms is None or not fresh.lag:
        return False
    return fresh.age_ms is None or fresh.age_ms > target_ms


def freshness(
    positions: dict[TopicPartition, Position],
    watermarks: dict[TopicPartition, int],
    now_ms: int,
) -> Freshness:
    partitions = []
    for (topic, partition), applied in sorted(positions.items()):
        high = watermarks.get((topic, partition))
        lag = None if high is None else max(0, high - applied.position)
        partitions.append(PartitionFreshness(topic, partition, applied.position, high, lag))
    lags = [p.lag for p in partitions]
    newest = [p.newest_ms for p in positions.values() if p.newest_ms is not None]
    newest_ms = max(newest) if newest else None
    return Freshness(
        age_ms=None if newest_ms is None else max(0, now_ms - newest_ms),
        newest_event_ms=newest_ms,
        lag=None if any(lag is None for lag in lags) else sum(lag for lag in lags if lag),
        partitions=tuple(partitions),
    )


def unmet(
    positions: dict[TopicPartition, Position], min_offsets: dict[TopicPartition, int]
) -> dict[TopicPartition, int]:
    """The fence's partitions whose record at the given offset is not applied yet, with
    the position each has reached."""
    short = {}
    for tp, offset in min_offsets.items():
        reached = positions[tp].position if tp in positions else 0
        if reached <= offset:
            short[tp] = reached
    return short
