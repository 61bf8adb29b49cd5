"""Consumer group lag over time, for the console's charts: a fixed ring of samples per
group and partition.

Bounded by `groups × partitions × samples` integers: a group past `max_groups` is not
kept (the page says so), a partition past `max_partitions` of its group neither, and each
series holds its latest `samples` values in a preallocated array (8 bytes a value), so a
client creating groups or partitions cannot grow it.
"""

from __future__ import annotations

import heapq
from array import array
from collections.abc import Mapping
from dataclasses import dataclass

TopicPartition = tuple[str, int]

# A slot with no lag for that partition at that time (committed later, or not sampled).
MISSING = -1


@dataclass(frozen=True, slots=True)
class LagSeries:
    """One group's samples, oldest first: times (ms) and each partition's lag (None where
    it had none)."""

    times_ms: list[int]
    lags: dict[TopicPartition, list[int | None]]


class _GroupRing:
    def __init__(self, samples: int) -> None:
        self.times = array("q", [0]) * samples
        self.lags: dict[TopicPartition, array[int]] = {}
        self.written = 0  # samples written since the group was first seen

    def slot(self) -> int:
        return self.written % len(self.times)


class LagHistory:
    def __init__(self, max_groups: int, max_partitions: int, samples: int) -> None:
        self.max_groups = max_groups
        self.max_partitions = max_partitions
        self.samples = samples
        self._groups: dict[str, _GroupRing] = {}
        self.groups_not_kept = 0  # groups the latest sample left out (over max_groups)

    def record(self, now_ms: int, lags: Mapping[str, Mapping[TopicPartition, int]]) -> None:
        """One sample: every group's lag per partition. A group absent from it is
        forgotten (its offsets were deleted, or it is coordinated elsewhere now)."""
        for group_id in [g for g in self._groups if g not in lags]:
            del self._groups[group_id]
        left_out = 0
        for group_id, partitions in lags.items():
            ring = self._groups.get(group_id)
            if ring is None:
                if len(self._groups) >= self.max_groups:
                    left_out += 1
                    continue
                ring = self._groups[group_id] = _GroupRing(self.samples)
            self._record_group(ring, now_ms, partitions)
        self.groups_not_kept = left_out

    def _record_group(
        self, ring: _GroupRing, now_ms: int, partitions: Mapping[TopicPartition, int]
    ) -> None:
        slot = ring.slot()
        ring.times[slot] = now_ms
        room = self.max_partitions - len(ring.lags)
        if room > 0:
            # The first partitions in order; not a sort of all of them at every sample (a
            # group of 100,000 partitions: 50-90 ms of the loop), nothing at all once full.
            new = (tp for tp in partitions if tp not in ring.lags)
            for tp in heapq.nsmallest(room, new):
                ring.lags[tp] = array("q", [MISSING]) * self.samples
        for tp, series in ring.lags.items():
            series[slot] = partitions.get(tp, MISSING)
        ring.written += 1

    def series(self, group_id: str) -> LagSeries | None:
        ring = self._groups.get(group_id)
        if ring is None:
            return None
        kept = min(ring.written, self.samples)
        # Oldest first: the ring's slots from the one after the newest, wrapping.
        order = [(ring.written - kept + i) % self.samples for i in range(kept)]
        times = [ring.times[i] for i in order]
        lags = {
            tp: [None if values[i] == MISSING else values[i] for i in order]
            for tp, values in sorted(ring.lags.items())
        }
        return LagSeries(times, lags)

    def values_kept(self) -> int:
        """How many lag values the rings hold (at most groups × partitions × samples)."""
        return sum(len(ring.lags) * self.samples for ring in self._groups.values())
