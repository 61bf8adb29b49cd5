"""A rate over sampled windows, measured as Kafka's metrics `Rate` over a `SampledStat`
measures a client quota, and the throttle time Kafka derives from it.

The rate is the sum of the retained samples over the time they span, where that span is
at least `samples - 1` whole windows (so a client's first bytes do not look like a huge
rate). A sample older than `samples` windows is reset before measuring.
"""

from __future__ import annotations


class SampledRate:
    """Kafka's `Rate` with `samples` windows of `window_ms`; values per second."""

    __slots__ = ("_current", "_samples", "_starts", "_values", "_window_ms")

    def __init__(self, samples: int, window_ms: int, now_ms: int) -> None:
        self._samples = samples
        self._window_ms = window_ms
        self._starts = [now_ms]
        self._values = [0.0]
        self._current = 0

    def record(self, value: float, now_ms: int) -> None:
        current = self._current
        if now_ms - self._starts[current] >= self._window_ms:
            current = (current + 1) % self._samples
            if current >= len(self._starts):
                self._starts.append(now_ms)
                self._values.append(0.0)
            else:
                self._starts[current] = now_ms
                self._values[current] = 0.0
            self._current = current
        self._values[current] += value

    def measure(self, now_ms: int) -> float:
        """The rate per second now (Kafka's `Rate.measure`)."""
        expire_ms = self._samples * self._window_ms
        starts = self._starts
        for i, start in enumerate(starts):
            if now_ms - start >= expire_ms:
                starts[i] = now_ms
                self._values[i] = 0.0
        return sum(self._values) / (self.window_ms(now_ms) / 1000)

    def window_ms(self, now_ms: int) -> int:
        """The span the rate is measured over (Kafka's `Rate.windowSize`)."""
        elapsed = now_ms - min(self._starts)
        full_windows = elapsed // self._window_ms
        if full_windows < self._samples - 1:
            elapsed += (self._samples - 1 - full_windows) * self._window_ms
        return max(elapsed, 1)


def throttle_ms(rate: SampledRate, quota: float, now_ms: int, bound_ms: int | None = None) -> int:
    """How long a client over `quota` is throttled so that its rate falls back to it
    (Kafka's QuotaUtils.throttleTime, bounded for the request quota); 0 within it."""
    observed = rate.measure(now_ms)
    if observed <= quota:
        return 0
    throttle = round((observed - quota) / quota * rate.window_ms(now_ms))
    if bound_ms is not None:
        throttle = min(throttle, bound_ms)
    return min(throttle, 2**31 - 1)
