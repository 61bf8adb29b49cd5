"""Time, as a component: the only module that reads the system clock.

`wall_ms` is epoch time (record timestamps, retention by age, commit times); `monotonic_ms`
only moves forward (deadlines, timers). Code that decides anything by time takes a `Clock`
(or `now_ms` as an argument), so tests and the simulation can drive time themselves
(`ManualClock`).
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def wall_ms(self) -> int: ...

    def monotonic_ms(self) -> int: ...


class SystemClock:
    def wall_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def monotonic_ms(self) -> int:
        return time.monotonic_ns() // 1_000_000


class ManualClock:
    """A clock that moves only when told to (tests, simulation)."""

    def __init__(self, wall_ms: int = 1_700_000_000_000, monotonic_ms: int = 0) -> None:
        self._wall_ms = wall_ms
        self._monotonic_ms = monotonic_ms

    def wall_ms(self) -> int:
        return self._wall_ms

    def monotonic_ms(self) -> int:
        return self._monotonic_ms

    def advance(self, ms: int) -> None:
        assert ms >= 0, "time does not go backwards"
        self._wall_ms += ms
        self._monotonic_ms += ms


def elapsed_ns() -> int:
    """A monotonic nanosecond counter for measuring how long work took (the handler time
    a request quota counts), never for deciding when something happens."""
    return time.perf_counter_ns()
