"""`log.cleaner.io.max.bytes.per.second`: the setting is read as Kafka reads a DOUBLE and
checked; the throttle sleeps what the bytes owe at the rate; the cleaner's reads and
writes all go through it. Time is a ManualClock that the injected sleep advances, so the
sleeps are counted, never timed."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from contextplane.clock import ManualClock
from contextplane.settings import SettingsError, load_settings
from contextplane.storage.cleaner_throttle import UNLIMITED, IoThrottle
from contextplane.storage.memory_objects import ObjectBucket
from contextplane.storage.memory_wal import WalMedium
from tests.unit.test_cleaner_swap import CLEANED, fill, log_of, open_engine


class Sleeps:
    """An injected sleep: records each sleep and moves the clock by it."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.seconds: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.seconds.append(seconds)
        self.clock.advance(round(seconds * 1000))


def test_the_setting_is_a_double_with_kafkas_default_and_a_positive_bound() -> None:
    name = "log.cleaner.io.max.bytes.per.second"
    assert load_settings(environ={}).log_cleaner_io_max_bytes_per_second == UNLIMITED
    assert (
        load_settings(environ={}, overrides={name: "1e7"}).log_cleaner_io_max_bytes_per_second
        == 1e7
    )
    assert (
        load_settings(environ={}, overrides={name: "1048576"}).log_cleaner_io_max_bytes_per_second
        == 1048576
    )
    for bad in ("0", "-1", "0.5", "NaN", "fast"):
        with pytest.raises(SettingsError, match=name):
            load_settings(environ={}, overrides={name: bad})


def test_bytes_faster_than_the_rate_sleep_what_they_owe() -> None:
    async def scenario() -> None:
        clock = ManualClock()
        sleeps = Sleeps(clock)
        throttle = IoThrottle(1000.0, clock, sleep=sleeps)
        await throttle.maybe_throttle(5)  # owes 5 ms: below the smallest sleep
        assert sleeps.seconds == []
        await throttle.maybe_throttle(495)  # 500 bytes at 1,000 B/s: 0.5 s
        assert sleeps.seconds == [0.5]
        clock.advance(200)  # time that passed counts: 300 bytes owe 0.3 s - 0.2 s
        await throttle.maybe_throttle(300)
        assert sleeps.seconds == pytest.approx([0.5, 0.1])
        clock.advance(10_000)  # idle: no credit is saved up beyond one period
        await throttle.maybe_throttle(10)
        await throttle.maybe_throttle(1000)
        assert sleeps.seconds[-1] == pytest.approx(1.0)  # not spared by the idle 10 s

    asyncio.run(scenario())


def test_the_default_never_sleeps() -> None:
    async def scenario() -> None:
        clock = ManualClock()
        sleeps = Sleeps(clock)
        throttle = IoThrottle(UNLIMITED, clock, sleep=sleeps)
        for _ in range(100):
            await throttle.maybe_throttle(1 << 30)
        assert sleeps.seconds == []

    asyncio.run(scenario())


def test_the_cleaners_reads_and_writes_are_paced(tmp_path: Path) -> None:
    async def scenario() -> None:
        clock, bucket, wal = ManualClock(), ObjectBucket(), WalMedium()
        engine, _ = await open_engine(tmp_path, bucket, clock, wal)
        await fill(engine, clock)
        sleeps = Sleeps(clock)
        rate = 100.0  # bytes per second: every range read and PUT owes seconds
        engine.cleaner.throttle = IoThrottle(rate, clock, sleep=sleeps)
        started = clock.monotonic_ms()
        assert await engine.cleaner.clean_once()
        assert await log_of(engine) == CLEANED
        stats = engine.cleaner.stats
        # Mapping read the dirty ranges, cleaning read them again and wrote the new
        # object: all of it paced, so the pass took (in the clock's time) what its bytes
        # take at the rate.
        moved = 2 * stats.bytes_read + stats.bytes_written
        assert stats.bytes_written > 0 and len(sleeps.seconds) >= 3
        assert clock.monotonic_ms() - started == pytest.approx(moved / rate * 1000, abs=50)
        await engine.close()

    asyncio.run(scenario())
