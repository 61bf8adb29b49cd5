"""`log.cleaner.io.max.bytes.per.second`: the log cleaner's reads and writes, paced.

Kafka's cleaner calls its Throttler with every segment's bytes it reads (mapping and
cleaning) and writes; once the bytes observed in the current period would have taken
longer at the set rate than the period has lasted, it sleeps the difference and starts a
new period. Here the same, with the cleaner's object reads and PUTs: the debt is paid as
soon as it reaches `min_sleep_ms` (Kafka checks every 300 ms instead), and a period with
no debt ends after `period_ms` so an idle cleaner saves up no credit. The default
(Double.MaxValue, Kafka's) never sleeps.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable

from contextplane.clock import Clock

UNLIMITED = sys.float_info.max  # Kafka's default, Double.MaxValue


class IoThrottle:
    def __init__(
        self,
        bytes_per_second: float,
        clock: Clock,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        min_sleep_ms: int = 10,
        period_ms: int = 300,
    ) -> None:
        self.bytes_per_second = bytes_per_second
        self._clock = clock
        self._sleep = sleep
        self._min_sleep_ms = min_sleep_ms
        self._period_ms = period_ms
        self._period_start_ms = clock.monotonic_ms()
        self._observed = 0
        self.slept_ms = 0.0  # in total, for tests and the cleaner's stats

    @property
    def unlimited(self) -> bool:
        return self.bytes_per_second >= UNLIMITED

    async def maybe_throttle(self, observed: int) -> None:
        """Count `observed` bytes read or written; sleep if they came too fast."""
        if self.unlimited or observed <= 0:
            return
        self._observed += observed
        elapsed_ms = self._clock.monotonic_ms() - self._period_start_ms
        owed_ms = self._observed * 1000 / self.bytes_per_second - elapsed_ms
        if owed_ms >= self._min_sleep_ms:
            self.slept_ms += owed_ms
            await self._sleep(owed_ms / 1000)
        elif elapsed_ms < self._period_ms:
            return
        self._period_start_ms = self._clock.monotonic_ms()
        self._observed = 0
