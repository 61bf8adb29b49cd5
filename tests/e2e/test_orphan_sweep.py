"""The orphan sweep against real stores: an object that no commit references (as a crash
between an upload's PUT and its commit leaves) is deleted at start-up once old enough,
on file:// and on S3 (SeaweedFS), while uploads running alongside the sweep lose
nothing."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import obstore
from confluent_kafka import Producer

from tests.e2e.test_produce_fetch import consume_all
from tests.support.inprocess import InProcessBroker
from tests.support.seaweedfs import SeaweedFS, seaweedfs_fixture  # noqa: F401 - fixture
from tests.support.wait import wait_until

HOUR_S = 3600


def produce(bootstrap: str, topic: str, count: int) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    failures: list[object] = []
    for i in range(count):
        producer.produce(
            topic,
            value=b"v%05d" % i,
            partition=0,
            on_delivery=lambda error, _: failures.append(error) if error else None,
        )
    assert producer.flush(30) == 0
    assert not failures


def test_an_old_uncommitted_object_is_swept_at_start_on_file(tmp_path: Path) -> None:
    data_dir = tmp_path / "broker"
    broker = InProcessBroker(data_dir, settings={"upload.interval.ms": "50"}).start()
    try:
        produce(broker.bootstrap, "kept", 200)
        root = data_dir / "objects"
        wait_until(lambda: list(root.rglob("*.obj")), 20, "an upload")
    finally:
        broker.stop()
    committed = set(root.rglob("*.obj"))
    # What a kill -9 between a PUT and its commit leaves: objects nothing references.
    old = root / "objects" / "0badc0de" / "1-9999999999999998.obj"
    young = root / "objects" / "0badc0de" / "1-9999999999999999.obj"
    for path in (old, young):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"an upload that never committed")
    two_hours_ago = time.time() - 2 * HOUR_S
    os.utime(old, (two_hours_ago, two_hours_ago))
    for path in committed:  # committed objects are kept however old they are
        os.utime(path, (two_hours_ago, two_hours_ago))

    broker.start()
    try:
        wait_until(lambda: not old.exists(), 20, "the old orphan is swept")
        assert young.exists(), "an object younger than the minimum age was swept"
        assert committed <= set(root.rglob("*.obj"))
        values = [m.value() for m in consume_all(broker.bootstrap, "kept", 1, 200)]
        assert values == [b"v%05d" % i for i in range(200)]
    finally:
        broker.stop()


def test_sweeping_s3_alongside_uploads_deletes_only_the_orphan(
    seaweedfs: SeaweedFS, tmp_path: Path
) -> None:
    """No minimum age and a sweep every 50 ms while records are uploaded: only the
    planted orphan goes; every acknowledged record is read back."""
    prefix = f"orphans-{uuid.uuid4().hex[:8]}"
    orphan = "objects/0badc0de/1-9999999999999999.obj"
    obstore.put(seaweedfs.store(prefix), orphan, b"an upload that never committed")
    broker = InProcessBroker(
        tmp_path / "broker",
        object_store=seaweedfs.url_for(prefix),
        settings={
            "upload.interval.ms": "20",
            "log.cache.bytes": "1",  # reads come from the objects
            "object.store.orphan.min.age.ms": "0",
            "object.store.orphan.sweep.interval.ms": "50",
        },
    ).start()

    async def passes() -> int:
        assert broker.broker is not None and broker.broker.storage is not None
        return broker.broker.storage.orphan_sweep.passes

    try:
        wait_until(
            lambda: orphan not in seaweedfs.list_keys(prefix), 20, "the planted orphan is swept"
        )
        first = broker.call(passes())
        for _ in range(5):
            produce(broker.bootstrap, "swept", 100)
        wait_until(lambda: broker.call(passes()) >= first + 3, 20, "sweeps during the uploads")
        values = [m.value() for m in consume_all(broker.bootstrap, "swept", 1, 500)]
        assert values == [b"v%05d" % (i % 100) for i in range(500)]
    finally:
        broker.stop()
