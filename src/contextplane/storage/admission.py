"""Produce admission: throttle, then refuse, while the storage tier cannot keep up.

Two things can run out while the object store is unreachable or slow: disk for the
un-uploaded WAL backlog (bounded by `wal.backlog.bytes`) and memory (the budget's
pinned part). Past `THROTTLE_START_FRACTION` of either bound, produce responses carry a
`throttle_time_ms` that grows with the pressure (as Kafka's quotas do; the response is
also delayed by it, so a client that ignores it is slowed too); at the bound, produce
gets KAFKA_STORAGE_ERROR (retriable) with a message naming the bound.

A full disk is detected by the WAL (ENOSPC). While it lasts, appends are refused without
touching the disk until the WAL directory's file system has `headroom` bytes free again,
checked at most every `DISK_RECHECK_MS`: otherwise every produce would write, fail and
take the space the metadata store needs to let uploads drain the WAL.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from contextplane import limits
from contextplane.clock import Clock, SystemClock

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Admission:
    throttle_ms: int = 0
    refusal: str | None = None  # the retriable error's message


ADMIT = Admission()


def admit(
    backlog_bytes: int, backlog_limit: int, pinned_bytes: int, memory_limit: int
) -> Admission:
    """The admission decision for one produce request (a pure function of the gauges)."""
    backlog = backlog_bytes / backlog_limit
    memory = pinned_bytes / memory_limit
    pressure = max(backlog, memory)
    start = limits.THROTTLE_START_FRACTION
    if pressure < start:
        return ADMIT
    if pressure >= 1:
        if backlog >= memory:
            reason = (
                f"un-uploaded WAL backlog of {backlog_bytes} bytes reached wal.backlog.bytes"
                f"={backlog_limit}: the object store is not keeping up; retry later"
            )
        else:
            reason = (
                f"memory held for un-uploaded data ({pinned_bytes} bytes) reached "
                f"memory.budget.bytes={memory_limit}: the object store is not keeping up;"
                " retry later"
            )
        return Admission(limits.PRODUCE_THROTTLE_MS_MAX, reason)
    share = (pressure - start) / (1 - start)
    return Admission(max(1, math.ceil(share * limits.PRODUCE_THROTTLE_MS_MAX)))


class RefusalLog:
    """Logs each episode of refused produce once: when it starts and when it ends."""

    def __init__(self) -> None:
        self._refusing = False

    def __call__(self, admission: Admission) -> Admission:
        refusing = admission.refusal is not None
        if refusing != self._refusing:
            self._refusing = refusing
            if refusing:
                log.warning("refusing produce: %s", admission.refusal)
            else:
                log.info("produce accepted again")
        return admission


def free_bytes(directory: Path) -> int:
    """Space available to this process on `directory`'s file system."""
    stats = os.statvfs(directory)
    return stats.f_bavail * stats.f_frsize


class DiskFullGate:
    """Refuses appends while the WAL's disk is full; reopens when space comes back."""

    def __init__(
        self, headroom_bytes: int, free: Callable[[], int], clock: Clock | None = None
    ) -> None:
        self.headroom_bytes = headroom_bytes
        self._free = free
        self._clock = clock or SystemClock()
        self.full = False
        self._checked_at_ms = -math.inf
        self._free_seen = 0

    def disk_full(self) -> None:
        """The WAL hit ENOSPC: refuse appends until space is back."""
        self.full = True
        self._checked_at_ms = self._clock.monotonic_ms()
        self._free_seen = 0

    def refusal(self) -> str | None:
        if not self.full:
            return None
        now_ms = self._clock.monotonic_ms()
        if now_ms - self._checked_at_ms >= limits.DISK_RECHECK_MS:
            self._checked_at_ms = now_ms
            try:
                self._free_seen = self._free()
            except OSError:
                self._free_seen = 0
            if self._free_seen >= self.headroom_bytes:
                self.full = False
                return None
        return (
            f"disk full: {self._free_seen} bytes usable by the write-ahead log, appends"
            f" resume at {self.headroom_bytes}; retry later"
        )
