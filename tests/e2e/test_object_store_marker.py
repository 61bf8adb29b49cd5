"""A broker refuses to start on an object store that is not its cluster's: another
cluster's store, or a store without the objects its metadata references (a mistyped
`object.store.url`). A cluster from before markers is marked at its next start."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from confluent_kafka import Producer

from contextplane.settings import Settings
from contextplane.storage.memory_objects import MemoryObjectStore, ObjectBucket
from contextplane.storage.store_marker import MARKER_PREFIX, check_store_marker
from tests.e2e.test_produce_fetch import consume_all
from tests.support.broker import BrokerProcess
from tests.support.metadata import open_store
from tests.support.wait import wait_until


def broker(data_dir: Path, objects: Path) -> BrokerProcess:
    return BrokerProcess(
        data_dir, object_store=objects.as_uri(), settings={"upload.interval.ms": "50"}
    )


def refused(process: BrokerProcess) -> str:
    """Start `process`, expect it to exit 1 before listening; what it logged."""
    log = process.data_dir.with_name(f"{process.data_dir.name}-broker.log")
    before = log.read_text() if log.exists() else ""
    with pytest.raises(RuntimeError, match="exited early"):
        process.start()
    assert process.process is not None and process.process.returncode == 1
    logged = log.read_text().removeprefix(before)
    assert "ready on" not in logged
    return logged


def markers(objects: Path) -> list[str]:
    return sorted(p.name for p in (objects / "cluster").glob("*"))


def test_a_broker_starts_only_on_its_clusters_store(tmp_path: Path) -> None:
    first, second = tmp_path / "store-1", tmp_path / "store-2"
    first.mkdir()
    second.mkdir()
    one = broker(tmp_path / "one", first).start()
    try:
        producer = Producer({"bootstrap.servers": one.bootstrap, "acks": "all"})
        for i in range(50):
            producer.produce("kept", value=b"v%02d" % i, partition=0)
        assert producer.flush(30) == 0
        wait_until(lambda: list(first.rglob("*.obj")), 20, "an upload")
    finally:
        one.stop()
    (cluster_id,) = markers(first)

    # The same data directory (its metadata) pointed at an empty store.
    tail = refused(broker(tmp_path / "one", second))
    assert f"The object store {second.as_uri()} has no cluster marker and does not hold" in tail
    assert "which the metadata store references" in tail
    assert not list(second.rglob("*")), "the refused broker wrote to the wrong store"

    # Another cluster (its own metadata) pointed at the first cluster's store.
    tail = refused(broker(tmp_path / "another", first))
    assert f"The object store {first.as_uri()} belongs to cluster {cluster_id}" in tail
    assert markers(first) == [cluster_id]

    # A cluster from before markers: its store holds its objects, so it is marked.
    (first / "cluster" / cluster_id).unlink()
    one = broker(tmp_path / "one", first).start()
    try:
        assert markers(first) == [cluster_id]
        values = [m.value() for m in consume_all(one.bootstrap, "kept", 1, 50)]
        assert values == [b"v%02d" % i for i in range(50)]
    finally:
        one.stop()


def test_a_store_that_cannot_be_listed_is_a_warning_not_a_refusal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        metadata = await open_store(Settings(data_dir=tmp_path))
        cluster_id = await metadata.cluster_id()
        bucket = ObjectBucket()
        store = MemoryObjectStore(bucket)
        store.failing.add("list")
        with caplog.at_level(logging.WARNING):
            await check_store_marker(store, metadata, cluster_id, "memory://down")
        assert "could not check which cluster object store memory://down" in caplog.text
        assert not bucket.objects  # nothing marked while the store is unknown
        store.failing.clear()
        await check_store_marker(store, metadata, cluster_id, "memory://up")
        assert list(bucket.objects) == [MARKER_PREFIX + cluster_id]
        await metadata.close()

    asyncio.run(scenario())
