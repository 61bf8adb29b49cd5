"""The controller mutation quota (KIP-599, `controller_mutation_rate`): partitions
created or deleted per second by CreateTopics, CreatePartitions and DeleteTopics, as
Kafka's ControllerMutationQuotaManager enforces it.

The rate is a token bucket (Kafka's TokenBucket stat): it holds at most
`quota * quota.window.num * quota.window.size.seconds` partitions, starts full, refills at
`quota` per second, and each mutation takes its partitions from it. The bucket may go
below zero; once it is, the quota is exhausted, and a client waits `-tokens / quota`
seconds for it to be whole again.

Two behaviours, by request version (Kafka's strict-since versions: CreateTopics v6,
DeleteTopics v5, CreatePartitions v3):
- strict: a topic whose mutation finds the quota already exhausted is refused with
  THROTTLING_QUOTA_EXCEEDED (the others of the request still go ahead while it is not);
  a mutation that takes the bucket below zero is accepted (Kafka's `checkQuotas` before
  `record`);
- permissive (older clients, which do not know the error): every mutation is accepted,
  and one that exhausts the quota throttles the response.
Either way the response's `throttle_time_ms` says how long to wait, and the connection
is muted that long.
"""

from __future__ import annotations

import math
from collections.abc import Callable

# Kafka's strict-since versions (ControllerApis' newQuotaFor calls).
STRICT_SINCE = {19: 6, 20: 5, 37: 3}  # CreateTopics, DeleteTopics, CreatePartitions


class TokenBucket:
    """Kafka's TokenBucket: `tokens` partitions left, refilled at `rate` per second up
    to `burst`."""

    __slots__ = ("_burst", "_last_ms", "_rate", "tokens")

    def __init__(self, rate: float, burst: float, now_ms: int) -> None:
        self._rate = rate
        self._burst = burst
        self.tokens = burst
        self._last_ms = now_ms

    def reconfigure(self, rate: float, burst: float) -> None:
        self._rate = rate
        self._burst = burst
        self.tokens = min(self.tokens, burst)

    def refill(self, now_ms: int) -> None:
        elapsed_ms = max(now_ms - self._last_ms, 0)
        self._last_ms = max(now_ms, self._last_ms)
        self.tokens = min(self._burst, self.tokens + self._rate * elapsed_ms / 1000)

    def record(self, permits: float, now_ms: int) -> None:
        self.refill(now_ms)
        self.tokens -= permits

    def throttle_ms(self) -> int:
        """How long until the bucket is no longer below zero (Kafka's
        ControllerMutationQuotaManager.throttleTimeMs)."""
        if self.tokens >= 0:
            return 0
        return min(math.floor(-self.tokens / self._rate * 1000 + 0.5), 2**31 - 1)


class MutationQuota:
    """One request's view of its client's mutation quota (Kafka's
    Strict/PermissiveControllerMutationQuota)."""

    def __init__(self, bucket: TokenBucket, strict: bool, clock_ms: Callable[[], int]) -> None:
        self._bucket = bucket
        self._strict = strict
        self._clock_ms = clock_ms  # monotonic milliseconds
        self._throttle_ms = 0
        self._throttled_at_ms = 0

    def accept(self, permits: int) -> bool:
        """Record `permits` partition mutations; False: refused (strict, the quota
        already exhausted), the topic is answered THROTTLING_QUOTA_EXCEEDED."""
        now_ms = self._clock_ms()
        bucket = self._bucket
        if self._strict:
            bucket.refill(now_ms)
            if bucket.tokens < 0:
                self._throttled(bucket.throttle_ms(), now_ms)
                return False
            bucket.record(permits, now_ms)
            return True
        bucket.record(permits, now_ms)
        if bucket.tokens < 0:
            self._throttled(bucket.throttle_ms(), now_ms)
        return True

    def _throttled(self, ms: int, now_ms: int) -> None:
        self._throttle_ms = ms
        self._throttled_at_ms = now_ms

    def throttle_ms(self) -> int:
        """The response's throttle: the last one recorded, less the time since."""
        if not self._throttle_ms:
            return 0
        return max(0, self._throttle_ms - (self._clock_ms() - self._throttled_at_ms))
