"""A latency histogram cheap enough to fill on a hot path or a worker thread.

Cumulative buckets are written out only when read (`cumulative`), as Prometheus's
`_bucket{le}` series; `observe` is one bisect and two additions. Increments from another
thread race only with a reader, which then sees a count one behind: fine for a metric.
"""

from __future__ import annotations

import bisect

# Seconds: from a fast fdatasync (~0.2 ms) to an object-store stall.
DEFAULT_BOUNDS_S = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0,
)  # fmt: skip


class LatencyHistogram:
    __slots__ = ("bounds", "counts", "sum_s")

    def __init__(self, bounds: tuple[float, ...] = DEFAULT_BOUNDS_S) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last: above every bound (+Inf)
        self.sum_s = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, seconds)] += 1
        self.sum_s += seconds

    def cumulative(self) -> list[tuple[str, int]]:
        """(le, observations at or below it) for each bound and +Inf."""
        out, total = [], 0
        for bound, count in zip((*map(str, self.bounds), "+Inf"), self.counts, strict=True):
            total += count
            out.append((bound, total))
        return out
