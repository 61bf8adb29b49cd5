"""Throughput of the log cleaner over a file:// object store.

A one-partition compacted topic receives `--megabytes` of keyed records (`--keys`
distinct keys, 200-byte values, uncompressed batches of 500 records), uploaded as
objects of `upload.bytes`; then one cleaning pass runs over everything but the last
object (the active segment) and its time is measured:

    .venv/bin/python -m bench.cleaner [--megabytes 32] [--keys 10000]

Prints the dirty section's size, the pass's wall time and MB/s of dirty section, and
what the pass wrote.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from contextplane.metadata.store import open_metadata_store
from contextplane.protocol.offsets_records import encode_batch
from contextplane.protocol.records import split_batches
from contextplane.settings import Settings
from contextplane.storage.compaction import CleanerConfig
from contextplane.storage.engine import StorageEngine

VALUE_BYTES = 200
RECORDS_PER_BATCH = 500


async def run(megabytes: int, keys: int, data_dir: Path) -> None:
    settings = Settings(data_dir=data_dir, upload_interval_ms=3_600_000, wal_fsync=False)
    metadata = open_metadata_store(settings.resolved_metadata_url)
    await metadata.open()
    await metadata.create_topic("bench", 1, {"cleanup.policy": "compact"})
    compacted = {"cleanup.policy": "compact"}
    engine = StorageEngine(settings, metadata, topic_configs=lambda _: compacted)
    await engine.open()
    partition = engine.partitions[("bench", 0)]
    sequence = 0
    total = megabytes * 1024 * 1024
    written = 0
    while written < total:
        records = []
        for _ in range(RECORDS_PER_BATCH):
            key = b"key-%08d" % (sequence % keys)
            records.append((key, b"%012d" % sequence + bytes(VALUE_BYTES - 12)))
            sequence += 1
        batch = encode_batch(records, 1_700_000_000_000)
        await engine.append(partition, split_batches(batch, 1 << 30)).durable
        written += len(batch)
        if engine.pending_bytes >= settings.upload_bytes:
            await engine.upload_once()
    while await engine.upload_once():
        pass
    ranges = list(partition.ranges)
    end = ranges[-1].base_offset
    dirty = sum(r.size for r in ranges[:-1])
    started = time.perf_counter()
    await engine.cleaner.clean_partition(partition, CleanerConfig(), end)
    seconds = time.perf_counter() - started
    stats = engine.cleaner.stats
    print(
        f"dirty section {dirty / 1e6:.1f} MB in {len(ranges) - 1} objects, {keys} keys:"
        f" cleaned in {seconds:.2f} s = {dirty / 1e6 / seconds:.1f} MB/s;"
        f" wrote {stats.bytes_written / 1e6:.2f} MB in {stats.swaps} objects"
    )
    await engine.close()
    await metadata.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--megabytes", type=int, default=32)
    parser.add_argument("--keys", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        asyncio.run(run(args.megabytes, args.keys, Path(directory)))


if __name__ == "__main__":
    main()
