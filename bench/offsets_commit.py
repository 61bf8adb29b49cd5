"""Micro-benchmark: what writing `__consumer_offsets` adds to an OffsetCommit.

A broker runs in this process (file WAL with fdatasync, SQLite metadata, as `contextplane
up`); one group commits the offsets of many partitions over and over, through the group
coordinator as the OffsetCommit handler calls it, with the offsets-topic journal on and
off, interleaved round by round so load from elsewhere on the machine falls on both:

    .venv/bin/python -m bench.offsets_commit [--partitions 1000] [--rounds 15]

Prints the median time of one commit with and without the journal, their ratio, and the
median CPU time of the append alone (encoding the batch and queueing it on the WAL).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from contextplane.broker.app import Broker
from contextplane.coordinators.committed_offsets import OffsetCommitEntry
from contextplane.coordinators.offsets_journal import NoJournal
from contextplane.metadata.records import OffsetRow
from contextplane.settings import Settings

COMMITS_PER_ROUND = 20


async def _commit(broker: Broker, entries: list[OffsetCommitEntry]) -> float:
    groups = broker.groups
    assert groups is not None
    started = time.perf_counter()
    codes = await groups.commit_offsets("bench-group", "", None, -1, 8, entries)
    elapsed = time.perf_counter() - started
    assert all(code == 0 for code in codes)
    return elapsed


async def run(partitions: int, rounds: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as data_dir:
        settings = Settings(data_dir=Path(data_dir), port=0)
        broker = Broker(settings)
        await broker.start()
        try:
            groups, writer, topics = broker.groups, broker.offsets_topic, broker.topics
            assert groups is not None and writer is not None and topics is not None
            await topics.create("bench-topic", partitions, {})
            on: list[float] = []
            off: list[float] = []
            append: list[float] = []
            offset = 0
            for _ in range(rounds):
                for journal, times in ((writer, on), (NoJournal(), off)):
                    groups.offsets.journal = journal
                    for _ in range(COMMITS_PER_ROUND):
                        offset += 1
                        entries = [
                            OffsetCommitEntry("bench-topic", p, offset, -1, "")
                            for p in range(partitions)
                        ]
                        times.append(await _commit(broker, entries))
                rows = [OffsetRow("bench-topic", p, offset, -1, "") for p in range(partitions)]
                started = time.process_time()
                writer.offsets_committed("bench-group", rows, 1_800_000_000_000)
                append.append(time.process_time() - started)
                await asyncio.sleep(0.01)  # let the WAL sync what was queued
            groups.offsets.journal = writer
        finally:
            await broker.stop()
    return {
        "commit_with_topic_ms": statistics.median(on) * 1000,
        "commit_without_topic_ms": statistics.median(off) * 1000,
        "ratio": statistics.median(on) / statistics.median(off),
        "append_cpu_ms": statistics.median(append) * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--partitions", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    result = asyncio.run(run(args.partitions, args.rounds))
    print(f"partitions per commit: {args.partitions}")
    for name, value in result.items():
        print(f"{name}: {value:.3f}")


if __name__ == "__main__":
    main()
