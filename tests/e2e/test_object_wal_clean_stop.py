"""The object WAL (`wal.url` on SeaweedFS) at a clean stop.

* a broker stopped cleanly (SIGTERM) after acks=all produce with nothing uploaded yet:
  its stop uploads everything and leaves only the empty marker; the restart replays
  nothing and every acknowledged record reads back once at its offset.
* the store frozen (SIGSTOP) during the stop: the stop gives up at `shutdown.timeout.ms`
  and keeps the WAL objects; the restart replays them and loses nothing.
* kill -9 of the broker once its stop's marker is listed (the store frozen then, so the
  deletion waits), and the process dying while its stop writes the marker or deletes the
  objects (the engine in process on the SeaweedFS store, halted there): nothing lost or
  duplicated.
"""

from __future__ import annotations

import logging
import re
import signal
import uuid
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from contextplane.storage.object_wal_names import WalObject, parse_key
from tests.e2e.test_crash import PARTITIONS, RDKAFKA_LOG, TOPIC, verify_log
from tests.e2e.test_object_wal import produce_once, wal_keys, wal_url
from tests.support.broker import BrokerProcess
from tests.support.seaweedfs import SeaweedFS, seaweedfs_fixture  # noqa: F401 - fixture
from tests.support.wait import wait_until
from tests.unit.test_clean_stop_object_wal import (
    check_a_crash_while_emptying,
    is_marker,
    settings_for,
)


def wal_objects(store: SeaweedFS, prefix: str) -> list[WalObject]:
    found = [parse_key(key) for key in wal_keys(store, prefix)]
    assert None not in found, found
    return [o for o in found if o is not None]


def broker_on(store: SeaweedFS, prefix: str, data_dir: Path, **settings: str) -> BrokerProcess:
    return BrokerProcess(
        data_dir,
        object_store=store.url_for(f"{prefix}/data"),
        settings={
            "wal.url": wal_url(store, prefix),
            "upload.interval.ms": "3600000",  # nothing is uploaded before the stop
            **settings,
        },
    ).start()


def produce(broker: BrokerProcess, count: int) -> tuple[dict, dict]:
    """(key -> (partition, offset) of each acknowledged record, key -> value size)."""
    admin = AdminClient({"bootstrap.servers": broker.bootstrap, "logger": RDKAFKA_LOG})
    admin.create_topics([NewTopic(TOPIC, PARTITIONS)])[TOPIC].result(15)
    outcomes = produce_once(broker.bootstrap, [f"k-{i}".encode() for i in range(count)])
    acked = {k: v for k, v in outcomes.items() if isinstance(v, tuple)}
    assert len(acked) == count, outcomes
    return acked, {k: 100 for k in outcomes}


def replayed(broker: BrokerProcess) -> list[str]:
    return re.findall(r"replayed (\d+) WAL entries", broker.log_tail(400))


@pytest.mark.slow
def test_a_clean_stop_leaves_only_the_marker_and_the_restart_replays_nothing(
    tmp_path: Path, seaweedfs: SeaweedFS
) -> None:
    prefix = f"walstop-{uuid.uuid4().hex[:8]}"
    broker = broker_on(seaweedfs, prefix, tmp_path / "broker")
    try:
        acked, sizes = produce(broker, 300)
        assert len(wal_objects(seaweedfs, prefix)) > 1
        broker.stop()
        [marker] = wal_objects(seaweedfs, prefix)
        assert is_marker(marker), marker
        broker.start(timeout_s=60)
        assert replayed(broker) == [], "the restart replayed WAL entries"
        checked = verify_log(broker.bootstrap, acked, sizes)
        assert checked["unacked_present"] == 0
    finally:
        broker.stop()


@pytest.mark.slow
def test_a_stop_with_the_store_frozen_keeps_the_wal_and_the_restart_loses_nothing(
    tmp_path: Path,
) -> None:
    store = SeaweedFS(tmp_path / "weed").start()
    prefix = "frozen"
    broker = broker_on(
        store,
        prefix,
        tmp_path / "broker",
        **{"shutdown.timeout.ms": "3000", "object.store.request.timeout.ms": "1000"},
    )
    try:
        acked, sizes = produce(broker, 300)
        written = wal_objects(store, prefix)
        store.freeze()
        try:
            broker.stop()  # gives up uploading at shutdown.timeout.ms
        finally:
            store.thaw()
        # Nothing deleted. A WAL append the stop issued into the frozen store may still
        # land after the thaw (the store read the request from its socket later): the
        # object WAL's recovery takes it or drops it as superseded, as any failed PUT.
        assert set(written) <= set(wal_objects(store, prefix))
        broker.start(timeout_s=60)
        assert replayed(broker), "the restart replayed nothing from the object WAL"
        verify_log(broker.bootstrap, acked, sizes)
    finally:
        broker.stop()
        store.stop()


@pytest.mark.slow
def test_kill9_once_the_stop_wrote_its_marker_loses_and_duplicates_nothing(
    tmp_path: Path,
) -> None:
    """The store is frozen as soon as the marker is listed, so the broker is killed while
    its deletion waits (unless it finished first: then while it exits)."""
    store = SeaweedFS(tmp_path / "weed").start()
    prefix = "killed"
    broker = broker_on(store, prefix, tmp_path / "broker")
    try:
        acked, sizes = produce(broker, 100)
        for round_ in range(1, 20):  # more WAL objects: a longer deletion
            more = produce_once(broker.bootstrap, [f"k{round_}-{i}".encode() for i in range(10)])
            acked.update((k, v) for k, v in more.items() if isinstance(v, tuple))
            sizes.update((k, 100) for k in more)
        written = len(wal_objects(store, prefix))
        assert broker.process is not None
        broker.process.send_signal(signal.SIGTERM)
        wait_until(
            lambda: any(is_marker(o) for o in wal_objects(store, prefix)),
            30,
            "the stop's marker",
            poll_s=0.01,
        )
        store.freeze()
        try:
            broker.kill9()
        finally:
            store.thaw()
        left = wal_objects(store, prefix)
        assert any(is_marker(o) for o in left)
        print(f"\nWAL objects: {written} before the stop, {len(left)} left at the kill")
        broker.start(timeout_s=60)
        assert replayed(broker) == [], "the restart replayed WAL entries"
        checked = verify_log(broker.bootstrap, acked, sizes)
        assert checked["unacked_present"] == 0
    finally:
        broker.stop()
        store.stop()


@pytest.mark.parametrize("halt_at", ["put", "delete"])
def test_dying_while_the_stop_empties_the_wal_on_seaweedfs_loses_nothing(
    tmp_path: Path, seaweedfs: SeaweedFS, halt_at: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="contextplane.storage")
    url = seaweedfs.url_for(f"walstop-{uuid.uuid4().hex[:8]}/wal")
    check_a_crash_while_emptying(settings_for(tmp_path, 10_000, url), halt_at, caplog)
