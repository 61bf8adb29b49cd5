"""Share-partition state (KIP-932) in the metadata store, on SQLite and PostgreSQL: saved
before an answer, loaded at start with locks forgotten and delivery counts kept; a failed
save is kept and written by the timer task once the store is back. And a broker process
killed with SIGKILL: acknowledged records are not delivered again, unacknowledged ones
are, their delivery counts kept."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer
from kio.schema.errors import ErrorCode

from contextplane.coordinators.share_coordinator import ShareConfig, ShareCoordinator
from contextplane.coordinators.share_partition import AckType, Acquired, RecordState, Run
from contextplane.metadata.records import StoredSharePartition
from contextplane.metadata.store import MetadataStore, MetadataStoreUnavailable
from contextplane.settings import Settings
from tests.support.broker import BrokerProcess
from tests.support.metadata import open_store
from tests.support.rawclient import RawClient
from tests.support.share_requests import acquired
from tests.support.wait import wait_until_async

KEY = ("g", "t", 0)


async def _coordinator(store: MetadataStore) -> ShareCoordinator:
    coordinator = ShareCoordinator(store, ShareConfig())
    await coordinator.start(lambda _topic: 1)
    return coordinator


def test_state_survives_a_restart_without_its_locks(metadata_url: str, tmp_path: Path) -> None:
    async def run() -> None:
        store = await open_store(Settings(data_dir=tmp_path, metadata_url=metadata_url))
        coordinator = await _coordinator(store)
        partition = coordinator.partition(KEY, 0)
        assert partition.acquire("a", range(10), 10, coordinator.now_ms()) == [Acquired(0, 9, 1)]
        acks = [(0, 2, (AckType.ACCEPT,)), (3, 3, (AckType.RELEASE,)), (4, 4, (AckType.REJECT,))]
        assert partition.acknowledge("a", acks, coordinator.now_ms()) == ErrorCode.none
        assert await coordinator.save()
        assert await coordinator.save()  # nothing changed: nothing to write
        await coordinator.stop()
        await store.close()

        store = await open_store(Settings(data_dir=tmp_path, metadata_url=metadata_url))
        restarted = await _coordinator(store)
        loaded = restarted.partitions[KEY]
        assert loaded.start_offset == 3
        assert loaded.runs() == [
            Run(3, 3, RecordState.AVAILABLE, 1),
            Run(4, 4, RecordState.ARCHIVED, 1),
            Run(5, 9, RecordState.AVAILABLE, 1),
        ]
        # Another member gets what was not done, each a second delivery.
        now = restarted.now_ms()
        assert loaded.acquire("b", range(10), 10, now) == [Acquired(3, 3, 2), Acquired(5, 9, 2)]
        await restarted.stop()
        await store.close()

    asyncio.run(run())


def test_a_refused_save_is_written_by_the_timer_task(metadata_url: str, tmp_path: Path) -> None:
    async def run() -> None:
        store = await open_store(Settings(data_dir=tmp_path, metadata_url=metadata_url))
        coordinator = await _coordinator(store)
        saved: list[list[StoredSharePartition]] = []
        real_save = store.save_share_partitions
        failing = True

        async def save(partitions: list[StoredSharePartition], fences: Any = ()) -> None:
            if failing:
                raise MetadataStoreUnavailable("connection lost")
            saved.append(partitions)
            await real_save(partitions, fences)

        store.save_share_partitions = save  # type: ignore[method-assign]
        coordinator.partition(KEY, 5).acquire("a", [5], 1, coordinator.now_ms())
        assert not await coordinator.save()
        failing = False
        await wait_until_async(lambda: bool(saved), 10, "the timer task saved the partition")
        assert saved[-1][0].runs == [(5, 5, int(RecordState.AVAILABLE), 1)]
        await coordinator.stop()
        await store.close()

    asyncio.run(run())


def _topic_id(client: RawClient, name: str) -> uuid.UUID:
    response = client.call(3, 12, topics=None, allow_auto_topic_creation=False)
    return next(t.topic_id for t in response.topics if t.name == name)


def _fetch(client: RawClient, member: str, epoch: int, topic_id: uuid.UUID | None) -> Any:
    topics = (
        []
        if topic_id is None
        else [
            {
                "topic_id": topic_id,
                "partitions": [{"partition_index": 0, "acknowledgement_batches": []}],
            }
        ]
    )
    return client.call(
        78,
        1,
        group_id="jobs",
        member_id=member,
        share_session_epoch=epoch,
        max_wait=5_000 if epoch else 0,
        min_bytes=1,
        max_bytes=1 << 20,
        max_records=100,
        batch_size=100,
        topics=topics,
        forgotten_topics_data=[],
    )


_acquired = acquired


def _join(client: RawClient, member: str) -> None:
    response = client.call(
        76, 1, group_id="jobs", member_id=member, member_epoch=0, subscribed_topic_names=["work"]
    )
    assert response.error_code == ErrorCode.none


@pytest.mark.slow  # a kill -9 crash scenario
def test_acknowledged_records_stay_done_across_a_sigkill(tmp_path: Path) -> None:
    broker = BrokerProcess(tmp_path / "broker").start()
    try:
        with RawClient(broker.bootstrap) as client:
            created = client.call(
                19,
                7,
                topics=[{"name": "work", "num_partitions": 1, "replication_factor": 1}],
                timeout=10_000,
            )
            assert created.topics[0].error_code == ErrorCode.none
            work = _topic_id(client, "work")
            _join(client, "a")
            assert _fetch(client, "a", 0, work).error_code == ErrorCode.none
            producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"})
            for index in range(6):
                producer.produce("work", value=f"job-{index}".encode())
            assert producer.flush(10) == 0
            assert _acquired(_fetch(client, "a", 1, None)) == [(0, 5, 1)]
            acked = client.call(
                79,
                1,
                group_id="jobs",
                member_id="a",
                share_session_epoch=2,
                topics=[
                    {
                        "topic_id": work,
                        "partitions": [
                            {
                                "partition_index": 0,
                                "acknowledgement_batches": [
                                    {"first_offset": 0, "last_offset": 2, "acknowledge_types": [1]}
                                ],
                            }
                        ],
                    }
                ],
            )
            assert acked.responses[0].partitions[0].error_code == ErrorCode.none
        broker.kill9()
        broker.restart()
        with RawClient(broker.bootstrap) as client:
            _join(client, "b")  # a new member (a stays one until its session ends)
            first = _fetch(client, "b", 0, work)
            assert first.error_code == ErrorCode.none
            got = _acquired(first) or _acquired(_fetch(client, "b", 1, None))
            # 0-2 were accepted: never again; 3-5 were held by the dead broker's member.
            assert got == [(3, 5, 2)]
    finally:
        broker.stop()


def test_a_deleted_topics_share_partitions_leave_the_store(
    metadata_url: str, tmp_path: Path
) -> None:
    async def run() -> None:
        store = await open_store(Settings(data_dir=tmp_path, metadata_url=metadata_url))
        coordinator = await _coordinator(store)
        coordinator.partition(KEY, 0).acquire("a", range(3), 3, coordinator.now_ms())
        coordinator.partition(("g", "other", 0), 7)
        assert await coordinator.save()
        await coordinator.on_topic_deleted("t")
        assert KEY not in coordinator.partitions
        assert [(p.topic, p.start_offset) for p in await store.share_partitions()] == [("other", 7)]
        await coordinator.stop()
        await store.close()

    asyncio.run(run())


def test_a_deleted_share_groups_partitions_leave_the_store(
    metadata_url: str, tmp_path: Path
) -> None:
    async def run() -> None:
        store = await open_store(Settings(data_dir=tmp_path, metadata_url=metadata_url))
        coordinator = await _coordinator(store)
        coordinator.partition(KEY, 0).acquire("a", range(3), 3, coordinator.now_ms())
        coordinator.partition(("other-group", "t", 0), 7)
        assert await coordinator.save()
        assert coordinator.knows(KEY[0]) and not coordinator.knows("never")
        assert await coordinator.delete_group(KEY[0]) == ErrorCode.none
        assert not coordinator.knows(KEY[0])
        assert [(p.group_id, p.start_offset) for p in await store.share_partitions()] == [
            ("other-group", 7)
        ]
        await coordinator.stop()
        await store.close()

    asyncio.run(run())


def test_altered_and_deleted_share_group_offsets_are_stored(
    metadata_url: str, tmp_path: Path
) -> None:
    """AlterShareGroupOffsets: the new SPSO, without in-flight runs, is in the store
    before the answer, and a store out of reach changes nothing; DeleteShareGroupOffsets
    removes only the named topic's partitions of that group."""

    async def run() -> None:
        store = await open_store(Settings(data_dir=tmp_path, metadata_url=metadata_url))
        coordinator = await _coordinator(store)
        coordinator.partition(KEY, 0).acquire("a", range(3), 3, coordinator.now_ms())
        coordinator.partition(("g", "other", 0), 7)
        coordinator.partition(("other-group", "t", 0), 9)
        assert await coordinator.save()
        held = coordinator.partitions[KEY]

        real_save = store.save_share_partitions

        async def refuse(partitions: list[StoredSharePartition], fences: Any = ()) -> None:
            raise MetadataStoreUnavailable("connection lost")

        store.save_share_partitions = refuse  # type: ignore[method-assign]
        refused = await coordinator.alter_offsets("g", {("t", 0): 2})
        assert refused == ErrorCode.coordinator_not_available
        assert coordinator.partitions[KEY] is held and held.acquired_count() == 3
        store.save_share_partitions = real_save  # type: ignore[method-assign]

        assert await coordinator.alter_offsets("g", {("t", 0): 2}) == ErrorCode.none
        assert (coordinator.partitions[KEY].start_offset, coordinator.partitions[KEY].runs()) == (
            2,
            [],
        )
        await coordinator.stop()
        await store.close()

        store = await open_store(Settings(data_dir=tmp_path, metadata_url=metadata_url))
        restarted = await _coordinator(store)
        assert (restarted.partitions[KEY].start_offset, restarted.partitions[KEY].runs()) == (
            2,
            [],
        )
        assert await restarted.delete_offsets("g", ["t"]) == ErrorCode.none
        stored = {(p.group_id, p.topic): p.start_offset for p in await store.share_partitions()}
        assert stored == {("g", "other"): 7, ("other-group", "t"): 9}
        await restarted.stop()
        await store.close()

    asyncio.run(run())
