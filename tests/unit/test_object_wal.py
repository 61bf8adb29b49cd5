"""The object WAL (`wal.url`): one PUT per group commit, acknowledged after the PUT,
failures that take back every non-durable entry, recovery that keeps exactly the log
(superseded objects and objects past a hole dropped), trimming oldest first.

Against the in-memory object store with failing, slow, lost-reply and crashing PUTs; the
engine-level runs drive an idempotent producer that retries as Kafka's clients do and
check that every acknowledged batch is in the log exactly once, in order."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from pathlib import Path

import pytest

from contextplane.cluster.leadership import NotLeader
from contextplane.errors import KafkaError
from contextplane.protocol.error_codes import ErrorCode
from contextplane.protocol.records import iter_batch_headers
from contextplane.settings import Settings
from contextplane.storage import paced_deletes
from contextplane.storage.engine import StorageEngine
from contextplane.storage.memory import MemoryBudget
from contextplane.storage.memory_objects import MemoryObjectStore, ObjectBucket
from contextplane.storage.object_wal import ObjectWal
from contextplane.storage.object_wal_names import (
    WalObject,
    parse_key,
    plan_recovery,
    wal_object_key,
)
from contextplane.storage.objectstore import BoundedObjectStore
from contextplane.storage.wal import WalEntry, WalWriteError
from tests.support.metadata import open_store
from tests.unit.test_engine_recovery import batch


def obj(incarnation: int, sequence: int, start: int, end: int, floor: int = 0) -> WalObject:
    return WalObject(incarnation, sequence, start, end, floor, f"{incarnation}/{sequence}")


def test_recovery_keeps_the_contiguous_log_and_drops_superseded_objects() -> None:
    durable = [obj(1, 0, 0, 10), obj(1, 1, 10, 20)]
    # 2 failed (it landed all the same), 3 was in flight beside it; 4 rewrote from 20.
    superseded = [obj(1, 2, 20, 30), obj(1, 3, 30, 45)]
    rewritten = [obj(1, 4, 20, 25), obj(2, 0, 25, 40)]
    kept, dropped = plan_recovery([*rewritten, *superseded, *durable])
    assert kept == durable + rewritten
    assert sorted(dropped, key=lambda o: o.sequence) == superseded
    # A PUT that landed beside one that did not (a hole) was never acknowledged.
    kept, dropped = plan_recovery([*durable, obj(1, 3, 30, 45)])
    assert (kept, dropped) == (durable, [obj(1, 3, 30, 45)])
    assert plan_recovery([]) == ([], [])


def test_recovery_ignores_whatever_lies_below_the_highest_floor() -> None:
    # Objects trimmed below floor 20: a deletion left 0-10 and lost 10-20, so without the
    # floor 0-10 would look like the log and 20-40 like a PUT past a hole.
    left_over = obj(1, 0, 0, 10)
    # A superseded object below the floor whose superseding object was deleted.
    superseded = obj(1, 1, 10, 35)
    log = [obj(1, 3, 20, 30, floor=0), obj(1, 4, 30, 40, floor=20)]
    kept, dropped = plan_recovery([left_over, superseded, *log])
    assert kept == log
    assert sorted(dropped, key=lambda o: o.sequence) == [left_over, superseded]


def test_keys_sort_in_write_order_and_parse_back() -> None:
    keys = [wal_object_key(7, 2, 0, 100, 200, 50), wal_object_key(7, 10, 3, 200, 250, 100)]
    assert sorted(keys) == keys
    assert [parse_key(k) for k in keys] == [
        WalObject(2, 0, 100, 200, 50, keys[0]),
        WalObject(10, 3, 200, 250, 100, keys[1]),
    ]
    assert parse_key("7/other") is None


class GatedStore(MemoryObjectStore):
    """The in-memory store whose PUTs each wait for the test to let them finish."""

    def __init__(self, bucket: ObjectBucket) -> None:
        super().__init__(bucket)
        self.gates: dict[str, asyncio.Event] = {}
        self.started: list[str] = []

    async def put(self, key: str, parts: Sequence[bytes | memoryview]) -> None:
        self.started.append(key)
        gate = self.gates.setdefault(key, asyncio.Event())
        await gate.wait()
        await super().put(key, parts)

    def finish(self, index: int) -> None:
        self.gates.setdefault(self.started[index], asyncio.Event()).set()


async def opened(store: MemoryObjectStore, **kwargs: object) -> ObjectWal:
    wal = ObjectWal(BoundedObjectStore(store, 10_000), 1, delete_interval_ns=0, **kwargs)  # type: ignore[arg-type]
    async for _ in wal.recover_pages():
        pass
    return wal


async def turn() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


def test_one_put_per_turn_at_most_four_in_flight_and_acks_in_append_order() -> None:
    async def run() -> None:
        store = GatedStore(ObjectBucket())
        budget = MemoryBudget(1 << 30, 1 << 30)
        wal = await opened(store, budget=budget)
        futures = []
        for round_ in range(6):
            for i in range(3):  # one request's batches: one PUT
                futures.append(wal.append(1, round_ * 3 + i, b"x" * 100)[1])
            await turn()
        assert len(store.started) == 4, "at most four PUTs in flight"
        assert budget.wal_bytes == wal.end_position
        store.finish(1)  # the second returns first: nothing is durable before the first
        await turn()
        assert not any(f.done() for f in futures)
        store.finish(0)
        await turn()
        assert [f.done() for f in futures[:6]] == [True] * 6 and not futures[6].done()
        # The two later rounds gathered into one PUT once slots were free.
        assert len(store.started) == 5
        for index in range(2, 5):
            store.finish(index)
        await asyncio.gather(*futures)
        assert wal.durable_position == wal.end_position and budget.wal_bytes == 0
        assert len(store.put_sizes) == 5

    asyncio.run(run())


def test_a_failed_put_fails_every_later_entry_and_the_next_append_writes_again() -> None:
    async def run() -> None:
        store = GatedStore(ObjectBucket())
        wal = await opened(store)
        failed_at: list[int] = []
        wal.on_failure = lambda position, error: failed_at.append(position)
        first = wal.append(1, 0, b"a" * 10)[1]
        await turn()
        second = wal.append(1, 1, b"b" * 10)[1]
        await turn()
        store.finish(0)
        await first
        store.failing.add("put")
        store.finish(1)
        with pytest.raises(WalWriteError):
            await second
        assert failed_at == [wal.durable_position]
        store.failing.clear()
        position, third = wal.append(1, 1, b"c" * 10)
        assert position == failed_at[0]
        await turn()
        store.finish(2)
        await third
        # The failed PUT wrote nothing here; had it landed, the rewrite would supersede it.
        entries = await recovered(store.bucket)
        assert [(e.base_offset, e.batch) for e in entries] == [(0, b"a" * 10), (1, b"c" * 10)]

    asyncio.run(run())


async def recovered(bucket: ObjectBucket) -> list[WalEntry]:
    wal = ObjectWal(BoundedObjectStore(MemoryObjectStore(bucket), 10_000), 1)
    return [e async for page in wal.recover_pages() for e in page]


def test_a_put_whose_reply_was_lost_is_superseded_and_deleted() -> None:
    async def run() -> None:
        bucket = ObjectBucket()
        store = MemoryObjectStore(bucket)
        wal = await opened(store)
        await wal.append(1, 0, b"a")[1]
        store.lose_put_replies = True  # it lands, and the broker is told it failed
        store.failing.add("delete")  # and it cannot be deleted yet
        with pytest.raises(WalWriteError):
            await wal.append(1, 1, b"lost")[1]
        store.lose_put_replies = False
        await wal.append(1, 1, b"b")[1]
        await turn()
        assert len(bucket.objects) == 3
        # Rewritten from its start by a later PUT: recovery leaves it out.
        assert [e.batch for e in await recovered(bucket)] == [b"a", b"b"]
        store.failing.clear()
        wal.trim(0)  # the next trim (or durable PUT) deletes what is due
        await turn()
        assert len(bucket.objects) == 2, "the superseded object was deleted"
        assert [e.batch for e in await recovered(bucket)] == [b"a", b"b"]

    asyncio.run(run())


def test_a_slow_put_times_out_and_the_wal_writes_again_once_the_store_answers() -> None:
    async def run() -> None:
        bucket = ObjectBucket()
        store = MemoryObjectStore(bucket)
        wal = ObjectWal(BoundedObjectStore(store, 50), 1)
        async for _ in wal.recover_pages():
            pass
        store.stall()
        with pytest.raises(WalWriteError, match="no answer"):
            await wal.append(1, 0, b"slow")[1]
        store.resume()
        await wal.append(1, 0, b"fast")[1]
        await turn()
        assert [e.batch for e in await recovered(bucket)] == [b"fast"]

    asyncio.run(run())


def test_trimmed_objects_are_deleted_once_a_durable_object_names_the_floor() -> None:
    async def run() -> None:
        bucket = ObjectBucket()
        store = MemoryObjectStore(bucket)
        wal = await opened(store)
        positions = []
        for i in range(3):
            position, durable = wal.append(1, i, bytes([i]) * 50)
            await durable
            positions.append(position)
        pinned = wal.open_batches([(positions[0], 50)])
        assert wal.trim(positions[2]) == 2
        assert wal.start_position == positions[2]
        await turn()
        assert len(bucket.objects) == 3, "no durable object names the new floor yet"
        await wal.append(1, 3, b"\x03" * 50)[1]
        await turn()
        assert len(bucket.objects) == 3, "the first is pinned by a read"
        assert await pinned.read() == [b"\x00" * 50]
        await turn()
        assert len(bucket.objects) == 2
        with pytest.raises(WalWriteError):
            wal.open_batches([(positions[0], 50)])
        assert [e.batch for e in await recovered(bucket)] == [b"\x02" * 50, b"\x03" * 50]

    asyncio.run(run())


class DeleteLog(MemoryObjectStore):
    """The in-memory store that records each bulk deletion's keys and span, each taking
    `latency_ms`; with `fail_delete_at`, that request (by number) fails."""

    def __init__(self, bucket: ObjectBucket, fail_delete_at: int | None = None) -> None:
        super().__init__(bucket, latency_ms=2)
        self.deletions: list[tuple[int, float, float]] = []  # (keys, began, ended)
        self.fail_delete_at = fail_delete_at

    async def delete_many(self, keys: Sequence[str]) -> None:
        loop = asyncio.get_running_loop()
        began = loop.time()
        self.failing = {"delete"} if len(self.deletions) == self.fail_delete_at else set()
        try:
            await super().delete_many(keys)
        finally:
            self.deletions.append((len(keys), began, loop.time()))


async def trimmed_log(store: MemoryObjectStore, objects: int) -> ObjectWal:
    """A WAL of `objects` durable objects, all trimmed, and one more naming the floor."""
    wal = await opened(store)
    for i in range(objects):
        await wal.append(1, i, b"x")[1]
    wal.trim(wal.end_position)
    await wal.append(1, objects, b"y")[1]
    return wal


async def settled(bucket: ObjectBucket, objects: int) -> None:
    for _ in range(500):
        if len(bucket.objects) == objects:
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"{len(bucket.objects)} objects left, not {objects}")


def test_trimmed_objects_go_in_small_paced_deletions_unless_the_backlog_is_long(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A 1,000-key deletion slowed the WAL's PUTs beside it ~6x (SeaweedFS); small
    requests, each followed by a pause of twice its length, keep the store's time for
    the PUTs. Past the backlog bound the pace gives way to full requests."""

    async def run(objects: int) -> list[tuple[int, float, float]]:
        bucket = ObjectBucket()
        store = DeleteLog(bucket)
        await trimmed_log(store, objects)
        await settled(bucket, 1)
        return store.deletions

    deletions = asyncio.run(run(100))
    assert [keys for keys, _, _ in deletions] == [32, 32, 32, 4]
    for (_, began, ended), (_, next_began, _) in zip(deletions, deletions[1:], strict=False):
        assert next_began - ended >= 2 * (ended - began) * 0.9, "no pause after a request"
    monkeypatch.setattr(paced_deletes, "BACKLOG_KEYS", 50)
    assert [keys for keys, _, _ in asyncio.run(run(100))] == [100]


def test_a_failed_deletion_keeps_only_the_keys_it_did_not_delete() -> None:
    async def run() -> None:
        bucket = ObjectBucket()
        store = DeleteLog(bucket, fail_delete_at=1)
        wal = await trimmed_log(store, 40)
        await settled(bucket, 41 - 32)  # the first request went; the second fails
        while len(store.deletions) < 2:
            await asyncio.sleep(0.005)
        await turn()
        assert len(wal._trimmed) == 8  # noqa: SLF001 - the keys left for the next round
        store.fail_delete_at = None
        wal.trim(wal.end_position)  # the next trim starts a round: the eight...
        await wal.append(1, 41, b"z")[1]  # ...then "y", once "z" names the floor past it
        await settled(bucket, 1)
        assert [keys for keys, _, _ in store.deletions][2:] == [8, 1]

    asyncio.run(run())


def test_the_object_naming_the_floor_stays_until_a_later_one_names_a_higher_floor() -> None:
    async def run() -> None:
        bucket = ObjectBucket()
        first = await opened(MemoryObjectStore(bucket), incarnation=1)
        await first.append(1, 0, b"a")[1]
        first.trim(first.end_position)
        await first.append(1, 1, b"b")[1]  # names the floor past "a": "a" is deleted
        await turn()
        first.trim(first.end_position)  # "b" leaves the log; its object stays
        assert len(bucket.objects) == 1
        # A restart finds "b" (uploaded: replay skips it) and writes on after it.
        second = await opened(MemoryObjectStore(bucket), incarnation=2)
        assert [e.batch for e in await recovered(bucket)] == [b"b"]
        position, durable = second.append(1, 2, b"c")
        await durable
        assert position == first.end_position
        await turn()
        assert [e.batch for e in await recovered(bucket)] == [b"b", b"c"]

    asyncio.run(run())


def test_a_new_incarnation_writes_on_after_the_recovered_log() -> None:
    async def run() -> None:
        bucket = ObjectBucket()
        first = await opened(MemoryObjectStore(bucket), incarnation=5)
        await first.append(1, 0, b"a")[1]
        end = first.end_position
        with pytest.raises(WalWriteError, match="not newer"):
            await opened(MemoryObjectStore(bucket), incarnation=5)
        second = await opened(MemoryObjectStore(bucket), incarnation=9)
        position, durable = second.append(1, 1, b"b")
        await durable
        assert position == end
        keys = sorted(bucket.objects)
        assert [parse_key(k).incarnation for k in keys] == [5, 9]  # type: ignore[union-attr]
        assert [e.batch for e in await recovered(bucket)] == [b"a", b"b"]

    asyncio.run(run())


# -- the engine on an object WAL: a producer, faults, crashes ---------------------------


async def engine_on(tmp_path: Path, bucket: ObjectBucket, objects: ObjectBucket) -> StorageEngine:
    settings = Settings(data_dir=tmp_path, upload_interval_ms=3_600_000)
    metadata = await open_store(settings, {"t": 1})
    store = MemoryObjectStore(bucket, latency_ms=1)
    wal = ObjectWal(BoundedObjectStore(store, 200), 1, delete_interval_ns=0)
    engine = StorageEngine(
        settings, metadata, wal=wal, objects=BoundedObjectStore(MemoryObjectStore(objects), 10_000)
    )
    engine.wal_store = store  # type: ignore[attr-defined]
    return engine


@pytest.mark.parametrize("seed", range(8))
def test_every_acknowledged_batch_survives_faults_and_crashes_once_and_in_order(
    tmp_path: Path, seed: int
) -> None:
    rng = random.Random(seed)
    wal_bucket, object_bucket = ObjectBucket(), ObjectBucket()
    acked: set[int] = set()  # sequences acknowledged
    next_sequence = 0  # the producer's first sequence not yet acknowledged

    async def life(crash: bool) -> None:
        nonlocal next_sequence
        engine = await engine_on(tmp_path, wal_bucket, object_bucket)
        await engine.open()
        store: MemoryObjectStore = engine.wal_store  # type: ignore[attr-defined]
        partition = engine.partitions[("t", 0)]
        for _ in range(rng.randrange(5, 15)):
            fault = rng.random()
            store.failing = {"put"} if fault < 0.15 else set()
            store.lose_put_replies = 0.15 <= fault < 0.3
            store.latency_ms = rng.choice([0, 1, 5])
            window = rng.randrange(1, 6)
            results = []
            for sequence in range(next_sequence, next_sequence + window):
                try:
                    appended = engine.append(partition, batch(1, sequence, 1, b"r"))
                except KafkaError:  # an earlier one failed meanwhile: out of sequence
                    break
                results.append(appended.durable)
                if rng.random() < 0.5:
                    await asyncio.sleep(0)
            outcomes = await asyncio.gather(
                *(r for r in results if r is not None), return_exceptions=True
            )
            ok = [not isinstance(o, BaseException) for o in outcomes]
            ok = [True] * (len(results) - len(outcomes)) + ok  # duplicates come first
            assert ok == sorted(ok, reverse=True), "acknowledged out of append order"
            acked.update(range(next_sequence, next_sequence + sum(ok)))
            next_sequence += sum(ok)
            if rng.random() < 0.3:
                store.failing, store.lose_put_replies = set(), False
                await engine.upload_once()
        store.failing, store.lose_put_replies = set(), False
        if crash:
            # Die with PUTs in flight: some land, some do not.
            store.latency_ms = 5
            for sequence in range(next_sequence, next_sequence + 3):
                durable = engine.append(partition, batch(1, sequence, 1, b"r")).durable
                if durable is not None:
                    durable.add_done_callback(lambda f: f.exception())
            await asyncio.sleep(rng.choice([0, 0.002, 0.006]))
            wal_bucket.crash(keep=lambda key: rng.random() < 0.5)
        else:
            await engine.close()

    async def read_back() -> list[int]:
        engine = await engine_on(tmp_path, wal_bucket, object_bucket)
        await engine.open()
        partition = engine.partitions[("t", 0)]
        sequences: list[int] = []
        while (offset := len(sequences)) < partition.high_watermark:  # a record a batch
            chunks = await engine.read(partition, offset, 1 << 30)
            headers = iter_batch_headers(b"".join(bytes(c) for c in chunks))
            assert headers[0].base_offset == offset
            sequences += [h.base_sequence for h in headers]
        return sequences

    for _ in range(4):
        asyncio.run(life(crash=rng.random() < 0.7))
    sequences = asyncio.run(read_back())
    # Every acknowledged batch once, in order; after them at most the batches a crash
    # left landed (never acknowledged: a later life's producer sent them again and was
    # answered as for a duplicate), and nothing else.
    assert sequences == list(range(len(sequences)))
    assert len(sequences) >= len(acked)


def test_a_batch_behind_a_failed_put_that_landed_is_retriable_and_stored_once(
    tmp_path: Path,
) -> None:
    """The race a SIGSTOPped leader loses: batch 0's PUT lands but the leader is told it
    failed (rolled back); the producer's pipelined batch 1 arrives next. It must be
    refused as retriable (KAFKA_STORAGE_ERROR), not OUT_OF_ORDER_SEQUENCE_NUMBER, on
    which librdkafka bumps its epoch and sends batch 0's records again under new
    sequences: stored twice once a new leader replays the landed PUT. Retried in order
    on the new leader, batch 0 is answered as a duplicate and batch 1 appended."""
    wal_bucket, object_bucket = ObjectBucket(), ObjectBucket()

    async def old_leader() -> None:
        engine = await engine_on(tmp_path, wal_bucket, object_bucket)
        await engine.open()
        store: MemoryObjectStore = engine.wal_store  # type: ignore[attr-defined]
        partition = engine.partitions[("t", 0)]
        store.lose_put_replies = True
        first = engine.append(partition, batch(1, 0, 2, b"r")).durable
        assert first is not None
        with pytest.raises(WalWriteError):
            await first
        with pytest.raises(KafkaError) as refused:
            engine.append(partition, batch(1, 2, 2, b"r"))
        assert refused.value.code == ErrorCode.kafka_storage_error
        wal_bucket.crash(keep=lambda key: True)  # it dies; the landed PUT stays

    async def new_leader() -> list[int]:
        engine = await engine_on(tmp_path, wal_bucket, object_bucket)
        await engine.open()
        partition = engine.partitions[("t", 0)]
        assert partition.high_watermark == 2  # batch 0, replayed from the landed PUT
        retried = engine.append(partition, batch(1, 0, 2, b"r"))
        assert retried.base_offset == 0  # a duplicate: answered with its offset
        durable = engine.append(partition, batch(1, 2, 2, b"r")).durable
        if durable is not None:
            await durable
        chunks = await engine.read(partition, 0, 1 << 30)
        headers = iter_batch_headers(b"".join(bytes(c) for c in chunks))
        await engine.close()
        return [h.base_sequence for h in headers]

    asyncio.run(old_leader())
    assert asyncio.run(new_leader()) == [0, 2]


def test_setting_wal_url_over_a_local_wal_with_un_uploaded_entries_refuses_to_start(
    tmp_path: Path,
) -> None:
    objects = ObjectBucket()
    wal_url = (tmp_path / "wal-objects").as_uri()

    async def life(url: str, upload: bool) -> StorageEngine:
        settings = Settings(data_dir=tmp_path, upload_interval_ms=3_600_000, wal_url=url)
        metadata = await open_store(settings, {"t": 1})
        engine = StorageEngine(
            settings, metadata, objects=BoundedObjectStore(MemoryObjectStore(objects), 10_000)
        )
        await engine.open()
        partition = engine.partitions[("t", 0)]
        sequence = partition.next_offset
        await engine.append(partition, batch(1, sequence, 1, b"r")).durable
        if upload:
            await engine.close()  # a clean stop uploads everything
        return engine

    asyncio.run(life("", upload=False))  # the local WAL keeps one entry, not uploaded
    with pytest.raises(WalWriteError, match="not yet in objects"):
        asyncio.run(life(wal_url, upload=True))
    asyncio.run(life("", upload=True))  # replayed and uploaded, then a clean stop

    async def on_the_object_wal() -> int:
        engine = await life(wal_url, upload=False)
        assert isinstance(engine.wal, ObjectWal)
        return engine.partitions[("t", 0)].high_watermark

    assert asyncio.run(on_the_object_wal()) == 3


def test_a_retry_of_a_durable_batch_waits_for_an_epoch_read_of_its_own(tmp_path: Path) -> None:
    """With an object WAL every acknowledgement follows an epoch read (RFC 0004 §5). When
    the original's read failed (the metadata store not answering), the producer retries;
    the retry, a duplicate of a durable batch, was acknowledged at once without a read,
    so a leader that another broker had meanwhile replaced could acknowledge it."""

    async def run() -> None:
        engine = await engine_on(tmp_path, ObjectBucket(), ObjectBucket())
        await engine.open()
        partition = engine.partitions[("t", 0)]
        reads: list[str] = []
        state = {"outcome": "unreachable"}

        def confirm(_: object) -> asyncio.Future[None]:
            outcome = state["outcome"]
            reads.append(outcome)
            read: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            if outcome == "unreachable":
                read.set_exception(KafkaError(ErrorCode.kafka_storage_error, "no answer"))
            elif outcome == "moved":
                read.set_exception(NotLeader("stream 1 is not led here any more"))
            else:
                read.set_result(None)
            return read

        engine._appender._confirm = confirm  # noqa: SLF001 - the epoch read, scripted
        first = engine.append(partition, batch(1, 0, 1, b"r"))
        with pytest.raises(KafkaError, match="no answer"):
            await first.durable
        assert partition.high_watermark == 1  # durable: only its acknowledgement failed
        for outcome, expected in (("unreachable", KafkaError), ("moved", NotLeader)):
            state["outcome"] = outcome
            retry = engine.append(partition, batch(1, 0, 1, b"r"))
            assert retry.durable is not None, "acknowledged without an epoch read"
            with pytest.raises(expected):
                await retry.durable
        state["outcome"] = "led"
        retry = engine.append(partition, batch(1, 0, 1, b"r"))
        assert retry.base_offset == 0
        await retry.durable
        assert reads == ["unreachable", "unreachable", "moved", "led"]
        await engine.close()

    asyncio.run(run())
