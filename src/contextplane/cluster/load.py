"""The load a broker publishes in its heartbeat (RFC 0004 §6), for the balancer: per
partition record bytes in and out per second, an exponentially weighted average over
about a minute, for the busiest partitions, plus the totals over every partition led here.

The bytes are the ones the request path already counts: each partition's log keeps two
plain integers (`PartitionLog.bytes_in`, `bytes_out`) added to where Produce and Fetch
count Kafka's per-topic BytesIn/BytesOut. Sampling them once per heartbeat is all the
work this adds; nothing runs per request.

The document is bounded: at most `TOP_PARTITIONS` partitions and `MAX_BYTES` of JSON (a
long topic name shortens the list rather than growing the row), so the `brokers` row stays
under ~64 KiB whatever the number of partitions led here.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

TOP_PARTITIONS = 1000
MAX_BYTES = 60 * 1024
WINDOW_S = 60.0  # the EWMA's time constant


class Counted(Protocol):
    """A partition log's identity and its running byte counters."""

    stream_id: int
    topic: str
    partition: int
    bytes_in: int
    bytes_out: int


@dataclass(slots=True)
class _Rate:
    seen_in: int
    seen_out: int
    rate_in: float = 0.0
    rate_out: float = 0.0


class LoadMeter:
    """Rates of the partitions `led()` returns, sampled at each `document(now_s)` call
    (the heartbeat's: a monotonic clock in seconds)."""

    def __init__(self, led: Callable[[], Iterable[Counted]]) -> None:
        self._led = led
        self._rates: dict[int, _Rate] = {}
        self._names: dict[int, tuple[str, int]] = {}
        self._last_s: float | None = None

    def sample(self, now_s: float) -> None:
        """Fold the bytes counted since the last sample into each partition's average;
        a partition no longer led here is forgotten."""
        elapsed = None if self._last_s is None else max(now_s - self._last_s, 1e-3)
        self._last_s = now_s
        weight = 0.0 if elapsed is None else 1.0 - math.exp(-elapsed / WINDOW_S)
        rates: dict[int, _Rate] = {}
        names: dict[int, tuple[str, int]] = {}
        for log in self._led():
            rate = self._rates.get(log.stream_id)
            if rate is None or elapsed is None:
                rate = _Rate(log.bytes_in, log.bytes_out)
            else:
                now_in = (log.bytes_in - rate.seen_in) / elapsed
                now_out = (log.bytes_out - rate.seen_out) / elapsed
                rate.rate_in += weight * (now_in - rate.rate_in)
                rate.rate_out += weight * (now_out - rate.rate_out)
                rate.seen_in, rate.seen_out = log.bytes_in, log.bytes_out
            rates[log.stream_id] = rate
            names[log.stream_id] = (log.topic, log.partition)
        self._rates, self._names = rates, names

    def document(self, now_s: float) -> str:
        """Sample, then the JSON the heartbeat writes in the row's `load`."""
        self.sample(now_s)
        return encode(
            (*self._names[stream], rate.rate_in, rate.rate_out)
            for stream, rate in self._rates.items()
        )


def encode(rates: Iterable[tuple[str, int, float, float]]) -> str:
    """`{"in": total, "out": total, "partitions": [[topic, partition, in, out], ...]}`,
    the busiest first, rounded to bytes per second and bounded as the module says."""
    rows = sorted(rates, key=lambda r: (-(r[2] + r[3]), r[0], r[1]))
    total_in = round(sum(r[2] for r in rows))
    total_out = round(sum(r[3] for r in rows))
    head = f'{{"in":{total_in},"out":{total_out},"partitions":['
    parts: list[str] = []
    size = len(head) + 2
    for topic, partition, rate_in, rate_out in rows[:TOP_PARTITIONS]:
        if round(rate_in) == 0 and round(rate_out) == 0:
            break  # the rest are idle: absent means no traffic
        row = [topic, partition, round(rate_in), round(rate_out)]
        part = json.dumps(row, separators=(",", ":"))
        if size + len(part) + 1 > MAX_BYTES:
            break
        parts.append(part)
        size += len(part) + 1
    return head + ",".join(parts) + "]}"


@dataclass(frozen=True, slots=True)
class BrokerLoad:
    """A broker's published load, decoded: totals and per partition (bytes/s)."""

    total: float
    partitions: dict[tuple[str, int], float]


def decode(text: str) -> BrokerLoad:
    """The load a broker published (in + out per partition); an empty or unreadable
    document is no load measured yet."""
    try:
        document = json.loads(text)
        partitions = {
            (str(topic), int(index)): float(rate_in) + float(rate_out)
            for topic, index, rate_in, rate_out in document.get("partitions", ())
        }
        total = float(document.get("in", 0)) + float(document.get("out", 0))
    except (ValueError, TypeError, AttributeError):
        return BrokerLoad(0.0, {})
    return BrokerLoad(total, partitions)
