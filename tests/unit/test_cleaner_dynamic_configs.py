"""Dynamic broker configs reach the log cleaner without a restart, as Kafka's
LogCleaner.reconfigure applies them.

It reads a batch's records within the larger of the topic's `max.message.bytes` and the
broker's current `message.max.bytes` (times message.max.decompression.ratio), as Kafka's
Cleaner grows its buffers to the larger of the two: a dynamic raise reaches it, and a
topic allowed larger batches than the broker's default has them compacted. A dynamic
`log.cleaner.io.max.bytes.per.second` paces its next read; any applied change wakes it
from its `log.cleaner.backoff.ms` sleep, so a new backoff counts from then."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

from contextplane.broker.dynamic_configs import DynamicBrokerConfigs
from contextplane.clock import ManualClock
from contextplane.protocol.compress import GZIP
from contextplane.protocol.offsets_records import encode_batch
from contextplane.protocol.record_codec import read_records, write_batch
from contextplane.protocol.records import split_batches
from contextplane.settings import Settings
from contextplane.storage.engine import StorageEngine
from contextplane.storage.memory_objects import MemoryObjectStore, ObjectBucket
from contextplane.storage.memory_wal import MemoryWal, WalMedium
from tests.support.metadata import open_store
from tests.unit.test_cleaner_swap import COMPACTED, log_of

SMALL = 2_000  # the broker's message.max.bytes at start: below what the batches hold
VALUE = b"v" * 3_000  # one record's value: compresses to a few dozen bytes


def _gzip_batch(records: list[tuple[bytes, bytes | None]]) -> bytes:
    plain = encode_batch(records, 1_700_000_000_000)
    header, decoded = read_records(plain, 1 << 20)
    header = dataclasses.replace(header, attributes=header.attributes | GZIP)
    return write_batch(header, decoded)


async def _logs_after_passes(
    tmp_path: Path,
    topic_configs: dict[str, str],
    raise_to: str | None,
    more: dict[str, str] | None = None,
) -> list[list[tuple[int, bytes | None, bytes | None]]]:
    """The log after a cleaner pass, then (when `raise_to`) after the broker's
    message.max.bytes (and `more`) is raised dynamically and the cleaner passes again."""
    clock = ManualClock()
    settings = Settings(
        data_dir=tmp_path,
        upload_interval_ms=3_600_000,
        log_cache_bytes=1,
        log_cleaner_enable=False,  # the test drives the cleaner
        message_max_bytes=SMALL,
        message_max_decompression_ratio=1,
    )
    metadata = await open_store(settings, {"t": 1})
    engine = StorageEngine(
        settings,
        metadata,
        wal=MemoryWal(WalMedium()),
        objects=MemoryObjectStore(ObjectBucket(), clock=clock),
        clock=clock,
        topic_configs=lambda _: topic_configs,
    )
    await engine.open()
    partition = engine.partitions[("t", 0)]
    for records in ([(b"a", VALUE), (b"b", VALUE)], [(b"a", b"2")], [(b"z", b"active")]):
        batch = _gzip_batch(records)
        await engine.append(partition, split_batches(batch, 1 << 20)).durable
        await engine.upload_once()
        clock.advance(1)
    assert await engine.cleaner.clean_once()
    logs = [await log_of(engine)]
    if raise_to is not None:  # as IncrementalAlterConfigs on the cluster default does
        dynamic = DynamicBrokerConfigs(metadata, settings)
        await dynamic.load()
        dynamic.on_change.append(engine.cleaner.wakeup.set)  # as the broker wires it
        engine.cleaner.wakeup.clear()
        changes = {"message.max.bytes": raise_to, **(more or {})}
        await dynamic.set("", changes, validate_only=False)
        assert settings.message_max_bytes == int(raise_to)
        assert engine.cleaner.wakeup.is_set()
        assert await engine.cleaner.clean_once()
        logs.append(await log_of(engine))
        rate = settings.log_cleaner_io_max_bytes_per_second
        assert engine.cleaner.throttle.bytes_per_second == rate
    await engine.close()
    await metadata.close()
    return logs


UNCLEANED = [(0, b"a", VALUE), (1, b"b", VALUE), (2, b"a", b"2"), (3, b"z", b"active")]
COMPACTED_LOG = [(1, b"b", VALUE), (2, b"a", b"2"), (3, b"z", b"active")]


def test_a_dynamic_message_max_bytes_reaches_the_cleaner_without_a_restart(
    tmp_path: Path,
) -> None:
    # Above the bound the partition is left alone (Kafka's cleaner fails such a log too:
    # growBuffersOrFail); once the bound is raised it is cleaned, without a restart.
    logs = asyncio.run(_logs_after_passes(tmp_path, COMPACTED, raise_to="1048588"))
    assert logs == [UNCLEANED, COMPACTED_LOG]


def test_a_topic_max_message_bytes_above_the_broker_s_is_the_cleaner_s_bound(
    tmp_path: Path,
) -> None:
    configs = {**COMPACTED, "max.message.bytes": "1048588"}
    assert asyncio.run(_logs_after_passes(tmp_path, configs, raise_to=None)) == [COMPACTED_LOG]


def test_a_dynamic_cleaner_io_rate_paces_the_next_pass(tmp_path: Path) -> None:
    # 100 MB/s: the pass's few KiB never wait, but the throttle takes the new rate.
    more = {"log.cleaner.io.max.bytes.per.second": "1e8"}
    logs = asyncio.run(_logs_after_passes(tmp_path, COMPACTED, raise_to="1048588", more=more))
    assert logs == [UNCLEANED, COMPACTED_LOG]
