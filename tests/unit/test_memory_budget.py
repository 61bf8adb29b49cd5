"""Every holder of bytes is under the one memory budget (RFC 0003, "4. Memory"):
responses a connection holds until the client has read them, object compaction's
reservations (never more than half of the in-flight share), and range records."""

from __future__ import annotations

import asyncio
import socket
import struct
import tracemalloc
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from contextplane import limits
from contextplane.broker.connections import ConnectionQuotas, RequestMemory
from contextplane.broker.context import Reply, RequestContext
from contextplane.broker.listener import Listener, SharedLimits
from contextplane.metadata.records import RangeRecord
from contextplane.protocol.records import split_batches
from contextplane.settings import Settings
from contextplane.storage.engine import StorageEngine
from contextplane.storage.memory import ABORTED_TXN_BYTES, RANGE_RECORD_BYTES, MemoryBudget
from contextplane.storage.memory_wal import MemoryWal, WalMedium
from contextplane.storage.object_index import ObjectRanges
from contextplane.storage.transactions_index import AbortedTxn, PartitionTransactions
from tests.support.bare_pipeline import bare_pipeline
from tests.support.metadata import open_store
from tests.support.rawclient import record_batch
from tests.support.wait import wait_until_async

API_VERSIONS = 18
# Well past the transport's high-water mark and what the kernel buffers.
RESPONSE_BYTES = 24 * 1024 * 1024


def _api_versions_request(correlation_id: int) -> bytes:
    header = struct.pack(">hhih", API_VERSIONS, 0, correlation_id, 1) + b"c"
    return struct.pack(">i", len(header)) + header


async def _large_response(ctx: RequestContext, request: Any) -> Reply:
    """A pre-encoded response of RESPONSE_BYTES, as the Fetch handler writes its record
    chunks: frame parts that reference their buffers."""
    payload = bytes(RESPONSE_BYTES)
    head = struct.pack(">ii", len(payload) + 4, ctx.header.correlation_id)
    return Reply(body=[head, memoryview(payload)])


def _run(scenario: Callable[[Listener, MemoryBudget], Awaitable[None]]) -> None:
    async def main() -> None:
        budget = MemoryBudget(total_bytes=64 * 1024 * 1024, log_cache_cap_bytes=0)
        settings = Settings()
        pipeline = bare_pipeline(API_VERSIONS, _large_response)
        shared = SharedLimits(
            ConnectionQuotas(100, 100, {}), RequestMemory(1024 * 1024), response_budget=budget
        )
        listener = Listener(pipeline, settings, shared=shared)
        await listener.start("127.0.0.1", 0)
        try:
            await scenario(listener, budget)
        finally:
            listener.close()

    asyncio.run(main())


async def _client_that_does_not_read(port: int) -> socket.socket:
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)  # the kernel takes little
    client.setblocking(False)
    await asyncio.get_running_loop().sock_connect(client, ("127.0.0.1", port))
    await asyncio.get_running_loop().sock_sendall(client, _api_versions_request(7))
    return client


def test_response_bytes_are_counted_until_the_client_reads_them() -> None:
    async def scenario(listener: Listener, budget: MemoryBudget) -> None:
        client = await _client_that_does_not_read(listener.port)
        try:
            # The unsent part of the response is held, and counted, while nobody reads.
            await wait_until_async(
                lambda: budget.response_bytes > RESPONSE_BYTES // 2, 10, "response bytes counted"
            )
            assert budget.response_bytes <= RESPONSE_BYTES + 8
            assert budget.used_bytes >= budget.response_bytes
            loop = asyncio.get_running_loop()
            received = 0
            while received < RESPONSE_BYTES + 8:
                chunk = await loop.sock_recv(client, 1024 * 1024)
                assert chunk, "the broker closed the connection"
                received += len(chunk)
            # Drained: released (by resume_writing, then the periodic check).
            await wait_until_async(lambda: budget.response_bytes == 0, 10, "released on drain")
        finally:
            client.close()

    _run(scenario)


def test_response_bytes_are_released_on_disconnect() -> None:
    async def scenario(listener: Listener, budget: MemoryBudget) -> None:
        client = await _client_that_does_not_read(listener.port)
        await wait_until_async(lambda: budget.response_bytes > 0, 10, "response bytes counted")
        client.close()
        await wait_until_async(lambda: not listener.connections, 10, "connection closed")
        assert budget.response_bytes == 0

    _run(scenario)


async def _settle() -> None:
    # Yields, not time: waiting tasks run until they block on their reservation.
    for _ in range(10):
        await asyncio.sleep(0)


def test_a_read_proceeds_alone_while_responses_hold_the_share() -> None:
    async def main() -> None:
        budget = MemoryBudget(total_bytes=1000, log_cache_cap_bytes=0)
        budget.pin_responses(2000)  # slow consumers hold more than the in-flight share
        entered: list[str] = []
        release = asyncio.Event()

        async def read(name: str) -> None:
            async with budget.reserve(100):
                entered.append(name)
                await release.wait()

        first = asyncio.create_task(read("first"))
        await _settle()
        second = asyncio.create_task(read("second"))
        await _settle()
        assert entered == ["first"]  # one read at a time while responses hold the share
        release.set()
        await asyncio.gather(first, second)
        assert entered == ["first", "second"]
        # Released response bytes wake waiting reservations (from synchronous code).
        release.clear()
        holder = asyncio.create_task(read("third"))
        await _settle()
        waiting = asyncio.create_task(read("fourth"))
        await _settle()
        assert entered[-1] == "third"
        budget.pin_responses(-2000)
        await _settle()
        assert entered[-1] == "fourth"
        release.set()
        await asyncio.gather(holder, waiting)
        assert budget.in_flight_bytes == 0 and budget.response_bytes == 0

    asyncio.run(main())


def test_response_bytes_shrink_the_log_cache_but_do_not_refuse_produce() -> None:
    budget = MemoryBudget(total_bytes=1000, log_cache_cap_bytes=1000)
    budget.pin_responses(600)
    assert budget.log_cache_limit == 400
    assert budget.produce_pinned_bytes == 0  # a slow consumer does not refuse producers


@pytest.mark.parametrize("compaction_size", [250, 10_000])
def test_compaction_never_starves_an_upload(compaction_size: int) -> None:
    """However large a compaction task's reservation, uploads and reads keep the other
    half of the in-flight share."""

    async def main() -> None:
        budget = MemoryBudget(total_bytes=1000, log_cache_cap_bytes=0)  # in-flight share 500
        compacting = asyncio.Event()
        done = asyncio.Event()

        async def compact() -> None:
            async with budget.reserve(compaction_size, compaction=True):
                compacting.set()
                await done.wait()

        task = asyncio.create_task(compact())
        await asyncio.wait_for(compacting.wait(), 5)

        async def uploads() -> None:
            async with budget.reserve(125), budget.reserve(125):
                assert budget.compaction_bytes == compaction_size

        # Two uploads filling the other half proceed while compaction holds its part.
        await asyncio.wait_for(uploads(), 5)
        done.set()
        await task
        assert budget.in_flight_bytes == budget.compaction_bytes == 0

    asyncio.run(main())


def test_compaction_waits_while_uploads_and_reads_use_the_share() -> None:
    async def main() -> None:
        budget = MemoryBudget(total_bytes=1000, log_cache_cap_bytes=0)
        entered: list[str] = []
        release = asyncio.Event()

        async def hold(name: str, size: int, compaction: bool) -> None:
            async with budget.reserve(size, compaction=compaction):
                entered.append(name)
                await release.wait()

        upload = asyncio.create_task(hold("upload", 400, False))
        await _settle()
        compaction = asyncio.create_task(hold("compaction", 250, True))
        await _settle()
        assert entered == ["upload"]  # 400 + 250 > 500: compaction waits its turn
        # A second compaction task never joins the first past half the share.
        release.set()
        await asyncio.gather(upload, compaction)
        release.clear()
        first = asyncio.create_task(hold("c1", 200, True))
        await _settle()
        second = asyncio.create_task(hold("c2", 200, True))
        await _settle()
        assert entered[-1] == "c1" and budget.compaction_bytes == 200
        release.set()
        await asyncio.gather(first, second)
        assert budget.in_flight_bytes == 0

    asyncio.run(main())


def _range(base: int, key: str = "objects/0/k.obj") -> RangeRecord:
    return RangeRecord(1, base, base + 10, key, base * 100, 1000, 0)


def test_range_records_are_counted_while_their_partition_is_loaded() -> None:
    budget = MemoryBudget(total_bytes=10_000_000, log_cache_cap_bytes=0)
    ranges = ObjectRanges([_range(0), _range(10)])
    ranges.count_in(budget)
    assert budget.range_record_bytes == 2 * RANGE_RECORD_BYTES
    ranges.append(_range(20))
    assert budget.range_record_bytes == 3 * RANGE_RECORD_BYTES
    assert budget.pinned_bytes == 3 * RANGE_RECORD_BYTES  # eviction cannot give them back
    ranges.drop_below(20)  # retention: the first two go
    assert budget.range_record_bytes == RANGE_RECORD_BYTES
    ranges.append(_range(30))
    ranges.append(_range(40))
    ranges.replace(20, 50, [RangeRecord(1, 20, 50, "objects/1/m.obj", 0, 3000, 0)])  # compacted
    assert budget.range_record_bytes == RANGE_RECORD_BYTES
    ranges.uncount()
    assert budget.range_record_bytes == 0


def test_range_record_bytes_is_what_a_record_costs() -> None:
    """The constant is a measurement (tracemalloc, keys not shared, as loaded from the
    metadata store): it must stay near what a record really holds."""
    count = 20_000
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        # Offsets, positions and times as a broker holds them (ints past the small cache).
        ranges = ObjectRanges(
            RangeRecord(
                7,
                1_000_000 + i * 1000,
                1_000_000 + (i + 1) * 1000,
                f"objects/{i % 4096:08x}/1-{i:016d}.obj",
                100_000 + i * 100_000,
                4_000_000 + i,
                1_700_000_000_000 + i,
                1_700_000_000_000 + i,
            )
            for i in range(count)
        )
        per_record = (tracemalloc.get_traced_memory()[0] - before) / count
    finally:
        tracemalloc.stop()
    assert len(ranges) == count
    assert 0.75 * per_record <= RANGE_RECORD_BYTES <= 1.25 * per_record, per_record


def test_the_engine_counts_the_ranges_of_loaded_partitions(tmp_path: Path) -> None:
    async def main() -> None:
        settings = Settings(data_dir=tmp_path, upload_interval_ms=3_600_000)
        metadata = await open_store(settings, {"t": 2})
        engine = StorageEngine(settings, metadata, wal=MemoryWal(WalMedium()))
        await engine.open()
        try:
            for index in range(2):
                partition = engine.partitions[("t", index)]
                for fill in (b"a", b"b", b"c"):
                    await engine.append(
                        partition, split_batches(record_batch([fill] * 5), 1 << 20)
                    ).durable
                    await engine.upload_once()  # one object, one range each
            assert engine.budget.range_record_bytes == 6 * RANGE_RECORD_BYTES
            engine.drop_topic("t")
            assert engine.budget.range_record_bytes == 0
        finally:
            await engine.close()
            await metadata.close()

    asyncio.run(main())


def _aborted(count: int, start: int = 0) -> PartitionTransactions:
    transactions = PartitionTransactions()
    transactions.aborted = [AbortedTxn(7, start + 3 * i, start + 3 * i + 2) for i in range(count)]
    return transactions


def test_aborted_transactions_are_counted_while_their_partition_is_loaded() -> None:
    budget = MemoryBudget(total_bytes=10_000_000, log_cache_cap_bytes=0)
    transactions = _aborted(10)
    transactions.count_in(budget)
    assert budget.aborted_txn_bytes == 10 * ABORTED_TXN_BYTES
    transactions.aborted.append(AbortedTxn(7, 30, 32))  # counted at the next spill
    transactions.spill(0)
    assert budget.aborted_txn_bytes == 11 * ABORTED_TXN_BYTES
    assert budget.pinned_bytes == 11 * ABORTED_TXN_BYTES
    transactions.trim(9)  # retention: the first three end below 9
    assert budget.aborted_txn_bytes == 8 * ABORTED_TXN_BYTES
    transactions.uncount()
    assert budget.aborted_txn_bytes == 0


def test_past_the_budgets_share_each_partition_keeps_a_floor_of_aborted_entries() -> None:
    """Every partition under the per-partition bound (1,024) but many of them: once
    together they pass a sixteenth of the budget, a partition's next spill keeps half
    the floor of its stored entries (before: each kept up to 1,024, ~1.8 GB at 10,000
    partitions)."""
    entries = limits.ABORTED_TXNS_IN_MEMORY_MAX - 24  # under the per-partition bound
    budget = MemoryBudget(
        total_bytes=16 * ABORTED_TXN_BYTES * entries * 3, log_cache_cap_bytes=0
    )  # room for three such partitions' entries
    partitions = [_aborted(entries) for _ in range(4)]
    for transactions in partitions[:3]:
        transactions.count_in(budget)
        transactions.spill(10**9)  # everything stored: nothing to drop under the share
        assert len(transactions.aborted) == entries
    partitions[3].count_in(budget)
    assert budget.aborted_txn_bytes > budget.aborted_limit
    partitions[3].spill(10**9)
    assert len(partitions[3].aborted) == limits.ABORTED_TXNS_IN_MEMORY_FLOOR // 2
    assert partitions[3].stored_before > 0  # a read below asks the store
    # Only what is stored is dropped: a partition whose entries are not yet in an
    # object keeps them all.
    unstored = _aborted(entries, start=10_000)
    unstored.count_in(budget)
    unstored.spill(0)
    assert len(unstored.aborted) == entries


def test_aborted_txn_bytes_is_what_an_entry_costs() -> None:
    count = 20_000
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        # A producer id and offsets as a broker holds them (ints past the small cache).
        entries = [
            AbortedTxn(4_000_000 + i, 1_000_000 + 3 * i, 1_000_002 + 3 * i) for i in range(count)
        ]
        per_entry = (tracemalloc.get_traced_memory()[0] - before) / count
    finally:
        tracemalloc.stop()
    assert len(entries) == count
    assert 0.75 * per_entry <= ABORTED_TXN_BYTES <= 1.25 * per_entry, per_entry


def test_partitions_a_failed_wal_takeover_built_leave_the_budget() -> None:
    """A WAL takeover builds its partitions (counted, as `claimed_log` counts them) and
    discards them when it fails, to build them again at its retry: the discarded ones'
    aborted entries leave the budget (before, each failed retry added them for good)."""
    from types import SimpleNamespace

    from contextplane.storage.wal_takeover import WalTakeover

    budget = MemoryBudget(total_bytes=10_000_000, log_cache_cap_bytes=0)
    takeover = WalTakeover.__new__(WalTakeover)
    takeover._log_cache = SimpleNamespace(drop_partition=lambda partition: None)
    for _retry in range(3):
        transactions = _aborted(100)
        transactions.count_in(budget)
        index = SimpleNamespace(close=lambda: None)
        takeover._discard([SimpleNamespace(deleted=False, transactions=transactions, index=index)])
    assert budget.aborted_txn_bytes == 0
