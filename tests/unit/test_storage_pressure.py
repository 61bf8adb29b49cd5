"""Pure pieces of storage under pressure: admission decisions, the disk-full gate, the
memory budget, producer-state rollback and the choice of what one upload takes."""

from __future__ import annotations

import asyncio

import pytest

from contextplane import limits
from contextplane.clock import ManualClock
from contextplane.errors import KafkaError
from contextplane.protocol.error_codes import ErrorCode
from contextplane.protocol.records import parse_header
from contextplane.storage.admission import DiskFullGate, admit
from contextplane.storage.memory import CACHED_BATCH_OVERHEAD_BYTES, MemoryBudget, ResidentBatches
from contextplane.storage.partition import CachedBatch, PartitionLog
from contextplane.storage.producer_state import ProducerStateTable
from contextplane.storage.uploader import select_for_upload
from tests.support.rawclient import record_batch

MIB = 1 << 20


def test_admission_throttles_then_refuses_naming_the_bound() -> None:
    assert admit(0, 100 * MIB, 0, 64 * MIB).throttle_ms == 0
    assert admit(49 * MIB, 100 * MIB, 0, 64 * MIB).throttle_ms == 0
    half = admit(75 * MIB, 100 * MIB, 0, 64 * MIB)
    near = admit(99 * MIB, 100 * MIB, 0, 64 * MIB)
    assert 0 < half.throttle_ms < near.throttle_ms <= limits.PRODUCE_THROTTLE_MS_MAX
    assert half.refusal is None and near.refusal is None
    full = admit(100 * MIB, 100 * MIB, 0, 64 * MIB)
    assert full.refusal is not None and "wal.backlog.bytes" in full.refusal
    memory = admit(0, 100 * MIB, 64 * MIB, 64 * MIB)
    assert memory.refusal is not None and "memory.budget.bytes" in memory.refusal


def test_disk_full_gate_rechecks_at_most_every_interval_and_reopens_with_headroom() -> None:
    clock = ManualClock()
    free = [0]
    checks = [0]

    def free_bytes() -> int:
        checks[0] += 1
        return free[0]

    gate = DiskFullGate(10 * MIB, free_bytes, clock)
    assert gate.refusal() is None
    gate.disk_full()
    assert gate.refusal() is not None
    free[0] = 9 * MIB
    clock.advance(limits.DISK_RECHECK_MS)
    assert "9437184 bytes usable" in (gate.refusal() or "")
    free[0] = 20 * MIB
    assert gate.refusal() is not None  # not rechecked yet: no statvfs per request
    assert checks[0] == 1
    clock.advance(limits.DISK_RECHECK_MS)
    assert gate.refusal() is None
    assert not gate.full


def cached(base: int, size: int, position: int, data: bool = True) -> CachedBatch:
    return CachedBatch(base, base + 1, 0, b"x" * size if data else None, position, size)


def test_resident_batches_evict_oldest_first_within_the_budget() -> None:
    budget = MemoryBudget(
        total_bytes=4000 + 10 * CACHED_BATCH_OVERHEAD_BYTES, log_cache_cap_bytes=1 << 30
    )
    resident = ResidentBatches(budget)
    partition = partition_with(1, [])  # owners are partitions: not hashable
    batches = [cached(i, 1000, i * 1000) for i in range(10)]
    for index, batch in enumerate(batches):
        batch.uploaded = index < 5
        budget.cached_batches += 1
        resident.add(partition, batch)
        owners = resident.evict()
        assert owners in ([], [partition])
        assert budget.log_cache_bytes <= budget.log_cache_limit
    # The records are pinned; the log cache gets the rest: the 4 newest batches stay.
    assert [b.data is not None for b in batches] == [False] * 6 + [True] * 4
    budget.block_cache_bytes = 1000  # a catch-up read filled some block cache
    resident.evict()
    assert [b.data is not None for b in batches] == [False] * 7 + [True] * 3
    resident.drop(batches[9])
    assert budget.log_cache_bytes == 2000


def test_in_flight_reservations_wait_for_room() -> None:
    async def run() -> list[str]:
        budget = MemoryBudget(total_bytes=1000, log_cache_cap_bytes=1000)
        order = []

        async def hold(name: str, size: int, release: asyncio.Event) -> None:
            async with budget.reserve(size):
                order.append(f"{name} in")
                await release.wait()
            order.append(f"{name} out")

        first_done, second_done = asyncio.Event(), asyncio.Event()
        first = asyncio.create_task(hold("first", 400, first_done))
        await asyncio.sleep(0)
        second = asyncio.create_task(hold("second", 400, second_done))
        # Yields, not time: the second task runs until it blocks on the reservation.
        for _ in range(5):
            await asyncio.sleep(0)
        assert order == ["first in"]  # 800 > half the budget: the second one waits
        first_done.set()
        second_done.set()
        await asyncio.gather(first, second)
        assert budget.in_flight_bytes == 0
        return order

    assert asyncio.run(run()) == ["first in", "first out", "second in", "second out"]


def test_producer_state_rollback_restores_sequences_and_epochs() -> None:
    table = ProducerStateTable()

    def header(epoch: int, sequence: int, count: int = 1):  # type: ignore[no-untyped-def]
        data = record_batch(
            [b"v"] * count, producer_id=7, producer_epoch=epoch, base_sequence=sequence
        )
        return parse_header(memoryview(data))

    for offset in range(6):  # more than the 5 retained batches
        table.record(header(0, offset), offset)
    table.commit(6)
    before = table.row_as_of(7, 100)
    table.record(header(0, 6), 6)
    table.record(header(1, 0), 7)  # a new epoch replaces the entry
    table.record(header(1, 1), 8)
    table.rollback(6)
    assert table.row_as_of(7, 100) == before
    assert table.check_sequence(header(0, 6)) is None  # continues the sequence
    table.record(header(0, 6), 6)
    table.commit(7)
    table.rollback(6)  # durable: nothing to take back
    assert table.producers[7].last_sequence == 6


def test_after_a_rollback_the_producers_later_batches_are_retriable_not_out_of_order() -> None:
    """A batch pipelined behind one whose write failed gets KAFKA_STORAGE_ERROR (retry),
    not OUT_OF_ORDER_SEQUENCE_NUMBER, which would make librdkafka bump the producer's
    epoch and send the failed batch again under new sequences (a duplicate if that write
    was durable after all); once the failed batch is appended again, a real gap is
    OUT_OF_ORDER_SEQUENCE_NUMBER again."""
    table = ProducerStateTable()

    def header(sequence: int, producer_id: int = 7):  # type: ignore[no-untyped-def]
        data = record_batch([b"v"], producer_id=producer_id, base_sequence=sequence)
        return parse_header(memoryview(data))

    def refusal(sequence: int, producer_id: int = 7) -> ErrorCode:
        with pytest.raises(KafkaError) as raised:
            table.check_sequence(header(sequence, producer_id))
        return raised.value.code

    table.record(header(0), 0)
    table.record(header(0, producer_id=8), 1)
    table.commit(2)
    assert refusal(2) is ErrorCode.out_of_order_sequence_number  # a gap, no failure
    table.record(header(1), 2)  # its write fails
    table.rollback(2)
    assert refusal(2) is ErrorCode.kafka_storage_error  # behind the failed batch: retry
    assert refusal(2, producer_id=8) is ErrorCode.out_of_order_sequence_number  # untouched
    assert table.check_sequence(header(1)) is None  # the failed batch is appended again
    table.record(header(1), 2)
    table.commit(3)
    assert table.check_sequence(header(2)) is None
    assert refusal(3) is ErrorCode.out_of_order_sequence_number


def test_a_producers_first_batch_rolled_back_is_still_first_when_retried() -> None:
    """A producer with no state is accepted at any sequence, but not a batch pipelined
    behind its first one whose write failed: that would append it ahead of the retry."""
    table = ProducerStateTable()

    def header(sequence: int, epoch: int = 0):  # type: ignore[no-untyped-def]
        data = record_batch([b"v"], producer_id=9, producer_epoch=epoch, base_sequence=sequence)
        return parse_header(memoryview(data))

    table.record(header(0), 0)  # its write fails
    table.rollback(0)
    assert 9 not in table.producers
    with pytest.raises(KafkaError) as raised:
        table.check_sequence(header(1))
    assert raised.value.code is ErrorCode.kafka_storage_error
    assert table.check_sequence(header(0, epoch=1)) is None  # another epoch: its own start
    assert table.check_sequence(header(0)) is None  # the retry of the failed batch
    table.record(header(0), 0)
    table.commit(1)
    assert table.check_sequence(header(1)) is None


def partition_with(stream_id: int, batches: list[CachedBatch]) -> PartitionLog:
    end = batches[-1].end_offset if batches else 0
    return PartitionLog(stream_id, f"t{stream_id}", 0, 0, 0, end, end, 0, cache=batches)


def test_upload_takes_the_oldest_wal_data_through_the_batch_that_crosses_the_bound() -> None:
    a = partition_with(1, [CachedBatch(i, i + 1, 0, None, i * 20, 10) for i in range(10)])
    b = partition_with(2, [CachedBatch(i, i + 1, 0, None, i * 20 + 10, 10) for i in range(10)])
    chosen = select_for_upload([a, b], 35)  # the data counts, not the index on top
    picked = {p.stream_id: [x.base_offset for x in batches] for p, batches in chosen}
    # WAL order, a prefix of each partition: 30 bytes are short of the bound, and the
    # fourth batch, which crosses it, is the object's last.
    assert picked == {1: [0, 1], 2: [0, 1]}
    exactly = select_for_upload([a, b], 40)
    assert sum(len(bs) for _, bs in exactly) == 4  # reaching the bound is enough
    huge = partition_with(3, [CachedBatch(0, 1, 0, None, 0, 1000)])
    assert [len(bs) for _, bs in select_for_upload([huge], 45)] == [1]  # alone if too big
    b.high_watermark = 0  # nothing durable in b
    assert [p.stream_id for p, _ in select_for_upload([a, b], 1000)] == [1]
