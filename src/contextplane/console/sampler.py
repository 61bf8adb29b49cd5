"""What the console shows over time, sampled on the broker's loop every few seconds: each
group's lag per partition (into `LagHistory`) and each topic's rates in and out.

A sample reads what /metrics reads (the partitions led here, the committed offsets of the
groups coordinated here, the request path's per-topic counters), so the two agree.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from contextplane.console.lag_history import LagHistory, TopicPartition
from contextplane.repeated_log import RepeatedLog

if TYPE_CHECKING:
    from contextplane.broker.context import Services

log = logging.getLogger("contextplane")

SAMPLE_INTERVAL_S = 5.0
# 10 minutes of 5 s samples, for at most 100 groups of at most 64 partitions each:
# at most 100 × 64 × 120 values of 8 bytes (6 MiB).
HISTORY_SAMPLES = 120
HISTORY_GROUPS_MAX = 100
HISTORY_PARTITIONS_MAX = 64
# A metadata store away fails every sample: a few lines, then one summary a minute.
FAILURES_LOG_INTERVAL_S = 60.0


Counted = dict[str, tuple[int, int, int]]  # topic -> (records in, bytes in, bytes out)


@dataclass(frozen=True, slots=True)
class TopicRates:
    """Per second over the latest interval between two samples."""

    records_in: float
    bytes_in: float
    bytes_out: float


def lag(high_watermark: int, committed: int) -> int:
    """kafka_exporter's lag: the high watermark less the committed offset, never below 0."""
    return max(0, high_watermark - committed)


def high_watermarks(services: Services) -> dict[TopicPartition, int]:
    """The high watermark of every partition led here."""
    return {
        (p.topic, p.partition): p.high_watermark
        for p in services.log.partitions.values()
        if not p.deleted
    }


class ConsoleSampler:
    def __init__(
        self,
        services: Services,
        history: LagHistory | None = None,
        interval_s: float = SAMPLE_INTERVAL_S,
    ) -> None:
        self._services = services
        self.history = history or LagHistory(
            HISTORY_GROUPS_MAX, HISTORY_PARTITIONS_MAX, HISTORY_SAMPLES
        )
        self.interval_s = interval_s
        self.rates: dict[str, TopicRates] = {}
        # Each group's total lag at the latest sample (the groups page's column).
        self.total_lag: dict[str, int] = {}
        self._counted: tuple[float, Counted] | None = None
        self._failures = RepeatedLog(log, "console samples failed", FAILURES_LOG_INTERVAL_S)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            now_s = self._services.clock.monotonic_ms() / 1000
            try:
                await self.sample()
            except Exception as exc:  # the metadata store may be away: the next one tries
                self._failures.event("sample", now_s, "a console sample failed: %s", exc)
            self._failures.flush(now_s)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval_s):  # not wait_for: see uploader.run
                    await stop.wait()

    async def sample(self) -> None:
        services = self._services
        now_s = services.clock.monotonic_ms() / 1000
        self._sample_rates(now_s)
        watermarks = high_watermarks(services)
        lags: dict[str, dict[TopicPartition, int]] = {}
        # One more than the history keeps, so it knows some were left out; the rest
        # are not read at all (one metadata store query a group).
        async for group_id, committed in services.groups.offsets.snapshot():
            led = {
                tp: lag(watermarks[tp], c.offset) for tp, c in committed.items() if tp in watermarks
            }
            if led:
                lags[group_id] = led
                if len(lags) > self.history.max_groups:
                    break
        self.history.record(services.clock.wall_ms(), lags)
        self.total_lag = {group_id: sum(led.values()) for group_id, led in lags.items()}

    def _sample_rates(self, now_s: float) -> None:
        counted = {
            topic: (c.messages_in, c.bytes_in, c.bytes_out)
            for topic, c in self._services.stats.topics.items()
        }
        if self._counted is not None:
            then_s, before = self._counted
            self.rates = topic_rates(before, counted, now_s - then_s)
        self._counted = (now_s, counted)


def topic_rates(before: Counted, after: Counted, elapsed_s: float) -> dict[str, TopicRates]:
    """Per second between two readings of the counters (a topic new since the first
    counts from 0; one gone since is not listed)."""
    elapsed_s = max(elapsed_s, 1e-3)
    rates = {}
    for topic, (records, bytes_in, bytes_out) in after.items():
        records0, bytes_in0, bytes_out0 = before.get(topic, (0, 0, 0))
        rates[topic] = TopicRates(
            (records - records0) / elapsed_s,
            (bytes_in - bytes_in0) / elapsed_s,
            (bytes_out - bytes_out0) / elapsed_s,
        )
    return rates
