"""The benchmark's debug probes (broker/probes.py): the loop-lag statistics, the GC pause
recorder, the object store's request counters, and the broker's JSON lines when the
`debug.probe.file` setting names a file (off by default)."""

from __future__ import annotations

import asyncio
import gc
import json
from pathlib import Path

import pytest

from contextplane.broker.probes import GcPauses, LagWindow, ProduceTimes, percentile
from contextplane.broker.stats import REQUEST_TIMES_KEPT, BrokerStats
from contextplane.settings import Settings
from contextplane.storage.memory_objects import MemoryObjectStore
from contextplane.storage.objectstore import BoundedObjectStore
from tests.support.inprocess import InProcessBroker
from tests.support.wait import wait_until


def test_percentile_is_the_nearest_rank() -> None:
    ordered = [float(v) for v in range(1, 101)]
    assert percentile(ordered, 0.50) == 50
    assert percentile(ordered, 0.99) == 99
    assert percentile(ordered, 1.0) == 100
    assert percentile([7.0], 0.99) == 7
    assert percentile([1.0, 2.0], 0.0) == 1


def test_lag_window_gives_p50_p99_max_in_ms_and_starts_a_new_window() -> None:
    window = LagWindow()
    for ms in reversed(range(1, 201)):  # order of arrival does not matter
        window.add(ms / 1000)
    summary = window.take()
    assert summary["count"] == 200
    assert summary["p50_ms"] == pytest.approx(100)
    assert summary["p99_ms"] == pytest.approx(198)
    assert summary["max_ms"] == pytest.approx(200)
    assert window.take() == {"count": 0, "p50_ms": None, "p99_ms": None, "max_ms": None}


def test_lag_window_counts_an_early_timer_as_on_time() -> None:
    # asyncio runs a timer up to its clock resolution early: lateness is never negative.
    window = LagWindow()
    window.add(-0.0002)
    window.add(0.003)
    summary = window.take()
    assert summary["p50_ms"] == 0
    assert summary["max_ms"] == pytest.approx(3)


def answered(stats: BrokerStats, api_key: int, total_ns: int) -> None:
    """A request of `api_key` answered `total_ns` after its frame arrived whole."""
    stats.request_done(api_key, 100, 0, 0, 0, 0, 0, total_ns)


def test_produce_times_are_the_requests_answered_in_the_window() -> None:
    stats = BrokerStats()
    answered(stats, 0, 5_000_000)  # before the probe watched: not in its first window
    times = ProduceTimes(stats)
    for ms in range(1, 101):
        answered(stats, 0, ms * 1_000_000)
    answered(stats, 1, 900_000_000)  # a Fetch: not a Produce
    summary = times.take()
    assert summary["count"] == 100
    assert summary["p50_ms"] == pytest.approx(50)
    assert summary["p99_ms"] == pytest.approx(99)
    assert summary["max_ms"] == pytest.approx(100)
    assert times.take() == {"count": 0, "p50_ms": None, "p99_ms": None, "max_ms": None}
    # Past the ring's length a window has the newest the ring holds, in order.
    for ms in range(REQUEST_TIMES_KEPT + 10):
        answered(stats, 0, ms * 1_000_000)
    summary = times.take()
    assert summary["count"] == REQUEST_TIMES_KEPT
    assert summary["max_ms"] == pytest.approx(REQUEST_TIMES_KEPT + 9)
    produce = stats.requests[0]
    assert produce.since(produce.count - 3) == pytest.approx(
        [REQUEST_TIMES_KEPT + 7, REQUEST_TIMES_KEPT + 8, REQUEST_TIMES_KEPT + 9]
    )


def test_produce_phases_split_each_request_time_at_its_points() -> None:
    stats = BrokerStats()
    times = ProduceTimes(stats)
    ms = 1_000_000
    # received 0, handled 1, local 2, dequeued 4, ready 8, written 16 (ms): each phase
    # twice the one before, so a phase taken from the wrong points shows.
    for _ in range(10):
        stats.request_done(0, 100, 0, 1 * ms, 2 * ms, 4 * ms, 8 * ms, 16 * ms)
    phases = times.take()["phases_p99_ms"]
    assert phases == pytest.approx({"queue": 1, "local": 1, "turn": 2, "remote": 4, "write": 8})


def test_gc_pauses_are_summed_per_generation_per_window() -> None:
    pauses = GcPauses()
    pauses.record(0, 0.5)
    pauses.record(0, 1.5)
    pauses.record(2, 40.0)
    assert pauses.take() == {
        "0": {"count": 2, "total_ms": 2.0, "max_ms": 1.5},
        "2": {"count": 1, "total_ms": 40.0, "max_ms": 40.0},
    }
    assert pauses.take() == {}


def test_gc_pauses_record_real_collections_until_uninstalled() -> None:
    pauses = GcPauses()
    pauses.install()
    try:
        gc.collect(2)
    finally:
        pauses.uninstall()
    full = pauses.take()["2"]
    assert full["count"] >= 1 and full["total_ms"] > 0
    gc.collect(2)
    assert pauses.take() == {}


def test_the_bounded_store_counts_gets_and_puts_with_their_bytes() -> None:
    store = BoundedObjectStore(MemoryObjectStore(), request_timeout_ms=5_000)

    async def run() -> None:
        await store.put("a", [b"01234", b"56789"])
        await store.get_range("a", 2, 5)
        await store.get_range("a", 0, 10)

    asyncio.run(run())
    assert (store.puts, store.put_bytes) == (1, 10)
    assert (store.gets, store.get_bytes) == (2, 13)


def test_probes_are_off_by_default() -> None:
    assert Settings().debug_probe_file == ""


def _lines(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_the_broker_writes_a_probe_line_each_second_and_a_final_one_at_a_clean_stop(
    tmp_path: Path,
) -> None:
    probe_file = tmp_path / "probes.jsonl"
    broker = InProcessBroker(tmp_path / "data", settings={"debug.probe.file": str(probe_file)})
    broker.start()
    try:
        wait_until(lambda: len(_lines(probe_file)) >= 2, 30, "two probe lines")
    finally:
        broker.stop()
    assert "object store requests since start: " in broker.log_tail(200)
    lines = _lines(probe_file)
    first, last = lines[0], lines[-1]
    assert [line["final"] for line in lines] == [False] * (len(lines) - 1) + [True]
    assert [line["seq"] for line in lines] == list(range(1, len(lines) + 1))
    lag = first["loop_lag"]
    assert isinstance(lag, dict) and lag["count"] > 0 and lag["p99_ms"] >= lag["p50_ms"] >= 0
    cpu_lag = first["loop_cpu_lag"]
    assert isinstance(cpu_lag, dict) and cpu_lag["count"] == lag["count"]
    assert cpu_lag["p99_ms"] >= cpu_lag["p50_ms"] >= 0
    assert isinstance(first["rss_bytes"], int) and first["rss_bytes"] > 0
    assert first["budget_total_bytes"] > 0 and first["budget_used_bytes"] >= 0  # type: ignore[operator]
    assert isinstance(first["gc"], dict)
    assert set(first["produce"]) == {"count", "p50_ms", "p99_ms", "max_ms"}  # type: ignore[arg-type]
    assert set(last["object_store"]) == {  # type: ignore[arg-type]
        "gets",
        "get_bytes",
        "puts",
        "put_bytes",
        "deletes",
        "compaction_puts",
        "cleaner_puts",
        "upload_objects",
        "upload_object_bytes",
    }
