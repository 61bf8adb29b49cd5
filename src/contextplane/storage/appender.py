"""Appends: the idempotent producer check, open transactions, offsets, the WAL queue,
the log cache, and the acknowledgement.

`append` validates nothing (the produce handler did) and runs synchronously on the event
loop, so offsets are assigned in the order batches arrive: each batch is stamped with its
base offset and the leader epoch, queued on the WAL and put in the log cache (not yet
visible). Its future resolves once the WAL says it is durable; then the high watermark
moves past it, in offset order.

If the WAL write fails, `take_back` removes the failed batch and every later one (offsets
stay dense, producer state is rolled back), so the producers' retries are appended again
at the same offsets rather than "deduplicated" onto offsets never written.
"""

from __future__ import annotations

import asyncio
import bisect
import errno
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from contextplane.cluster.leadership import NotLeader
from contextplane.errors import KafkaError
from contextplane.protocol.error_codes import ErrorCode
from contextplane.protocol.records import (
    TRANSACTIONAL_BIT,
    BatchHeader,
    empty_batch,
    parse_header,
    stamp,
)
from contextplane.storage.admission import DiskFullGate
from contextplane.storage.log_cache import LogCache
from contextplane.storage.partition import CachedBatch, PartitionLog, track_transaction
from contextplane.storage.wal import WalWriteError, WriteAheadLog

OFFSET_MAX = 2**63 - 1  # Kafka's offsets are signed 64-bit
GAP_BATCH_OFFSETS_MAX = 2**31  # an empty batch's last offset delta is a signed 32-bit
# Gap batches one mirrored batch may be preceded by: ~34 billion offsets, 16 small WAL
# writes, so a request cannot make the broker write (and cache) a batch per 2^31 offsets.
GAP_BATCHES_MAX = 16


@dataclass(slots=True)
class AppendResult:
    base_offset: int
    log_append_time: int
    durable: asyncio.Future[None] | None  # None: nothing new was written (a duplicate)


class Appender:
    def __init__(
        self,
        wal: WriteAheadLog,
        log_cache: LogCache,
        disk_gate: DiskFullGate,
        upload_bytes: int,
        wake_uploader: Callable[[], None],
        before_ack: Callable[[PartitionLog], asyncio.Future[None] | None] = lambda p: None,
        confirm: Callable[[PartitionLog], asyncio.Future[None]] | None = None,
    ) -> None:
        """`before_ack(partition)` is what an acknowledgement waits for besides the WAL
        (the dirty mark: wal_dirty.py); None for nothing. `confirm(partition)`, when
        given, is asked once both are done and the acknowledgement waits for it too (the
        object WAL's epoch read, `Leadership.confirm`)."""
        self._wal = wal
        self._before_ack = before_ack
        self._confirm = confirm
        self._log_cache = log_cache
        self._disk_gate = disk_gate
        self._upload_bytes = upload_bytes
        self._wake_uploader = wake_uploader

    def append(
        self,
        partition: PartitionLog,
        batches: Iterable[tuple[BatchHeader, memoryview]],
        log_append_time_ms: int | None = None,
    ) -> AppendResult:
        """Assign offsets to validated batches and queue them for the WAL."""
        if partition.handing_over:
            raise NotLeader(f"{partition.topic}-{partition.partition} is moving: retry")
        headers = list(batches)
        for header, _ in headers:
            duplicate = partition.producers.check_sequence(header)
            if duplicate is not None:
                if len(headers) != 1:  # the produce handler admits one batch per partition
                    raise KafkaError(ErrorCode.invalid_record, "duplicate inside a multi-batch")
                waited = _joined(
                    _durable_at(partition, duplicate.last_offset + 1), self._before_ack(partition)
                )
                if self._confirm is not None:
                    # The original's epoch read may have failed (the producer retries
                    # because its acknowledgement did): a retry of a durable batch is
                    # acknowledged only after an epoch read of its own too.
                    if waited is None:
                        waited = asyncio.get_running_loop().create_future()
                        waited.set_result(None)
                    waited = _acknowledgement(partition, waited, None, self._confirm)
                return AppendResult(duplicate.base_offset, -1, waited)
            if (
                header.producer_id >= 0
                and not header.attributes & TRANSACTIONAL_BIT
                and partition.transactions.in_transaction(header.producer_id)
            ):
                # Kafka's ProducerAppendInfo: a plain batch under the producer id of an
                # open transaction would take that transaction's sequence numbers.
                raise KafkaError(
                    ErrorCode.invalid_txn_state,
                    f"Expected transactional write from producer {header.producer_id} at "
                    f"offset {partition.next_offset} in partition "
                    f"{partition.topic}-{partition.partition}",
                )
        refusal = self._disk_gate.refusal()
        if refusal is not None:
            raise KafkaError(ErrorCode.kafka_storage_error, refusal)
        first_offset = partition.next_offset
        durable: asyncio.Future[None] | None = None
        for header, batch in headers:
            partition.producers.record(header, partition.next_offset)
            durable = self._write_at(partition, header, batch, log_append_time_ms)
        if self._log_cache.pending_bytes >= self._upload_bytes:
            self._wake_uploader()
        assert durable is not None
        return AppendResult(
            first_offset,
            -1 if log_append_time_ms is None else log_append_time_ms,
            _acknowledgement(partition, durable, self._before_ack(partition), self._confirm),
        )

    def mirror(
        self, partition: PartitionLog, header: BatchHeader, batch: memoryview
    ) -> AppendResult:
        """Append a batch copied from another cluster at its own base offset (MirrorAppend).

        Offsets the source no longer has before it (compaction, aborted-then-cleaned
        transactions, a later log start) are spanned by an empty batch, as Kafka's log
        cleaner leaves them, so the log stays contiguous for the WAL, objects and readers.
        A batch wholly below the log end that starts where a batch here starts, or below
        what is cached, is taken as already mirrored (a resumed mirror sends it again):
        acknowledged once durable, not written. The source's producer ids are not
        entered in the idempotence table (they were the source's to check, and would
        collide with this cluster's own), but transactions are tracked so read_committed
        readers see what the source's see."""
        if partition.handing_over:
            raise NotLeader(f"{partition.topic}-{partition.partition} is moving: retry")
        base = header.base_offset
        end = base + header.last_offset_delta + 1
        _check_offsets(partition, header)
        if base < partition.next_offset:
            if end <= partition.next_offset and _mirrored_already(partition, base, end):
                return AppendResult(base, -1, _durable_at(partition, end))
            raise KafkaError(
                ErrorCode.invalid_record,
                f"batch at offsets {base}-{end - 1} overlaps the log of "
                f"{partition.topic}-{partition.partition}, which ends at "
                f"{partition.next_offset}",
            )
        refusal = self._disk_gate.refusal()
        if refusal is not None:
            raise KafkaError(ErrorCode.kafka_storage_error, refusal)
        while partition.next_offset < base:  # _check_offsets bounded the batches
            offsets = min(base - partition.next_offset, GAP_BATCH_OFFSETS_MAX)
            gap = empty_batch(partition.next_offset, offsets, header.base_timestamp)
            self._write_at(partition, parse_header(gap), memoryview(gap))
        durable = self._write_at(partition, header, batch)
        if self._log_cache.pending_bytes >= self._upload_bytes:
            self._wake_uploader()
        return AppendResult(
            base,
            -1,
            _acknowledgement(partition, durable, self._before_ack(partition), self._confirm),
        )

    def _write_at(
        self,
        partition: PartitionLog,
        header: BatchHeader,
        batch: memoryview,
        log_append_time_ms: int | None = None,
    ) -> asyncio.Future[None]:
        """Queue one batch at the log end (a mirrored batch's own base offset, which the
        log end has reached) for the WAL and the log cache; the future is its
        durability."""
        base = partition.next_offset
        data = stamp(batch, base, partition.leader_epoch, log_append_time_ms)
        end = base + header.last_offset_delta + 1
        position, durable = self._wal.append(partition.stream_id, base, data)
        max_timestamp = header.max_timestamp if log_append_time_ms is None else log_append_time_ms
        self._log_cache.add(
            partition, CachedBatch(base, end, max_timestamp, data, position, len(data))
        )
        if header.attributes & TRANSACTIONAL_BIT:  # skip the call on the plain path
            track_transaction(partition, header, data, base)
        partition.next_offset = end
        durable.add_done_callback(_advance_when_durable(partition, end))
        return durable

    def take_back(
        self, partitions: Iterable[PartitionLog], position: int, error: BaseException
    ) -> None:
        """The WAL could not make anything from `position` on durable: take those batches
        back, so offsets stay dense and idempotent retries are appended again."""
        self._log_cache.take_back_from(partitions, position)
        if isinstance(error, OSError) and error.errno == errno.ENOSPC:
            self._disk_gate.disk_full()


def _check_offsets(partition: PartitionLog, header: BatchHeader) -> None:
    """Refuse a mirrored batch whose offsets no log could hold: a negative base, a batch
    spanning no offsets, offsets past Kafka's largest (2^63 - 1), or a gap before it
    wider than GAP_BATCHES_MAX empty batches span (each writes a batch to the WAL)."""
    base, delta = header.base_offset, header.last_offset_delta
    name = f"{partition.topic}-{partition.partition}"
    if base < 0 or delta < 0 or base + delta > OFFSET_MAX:
        raise KafkaError(
            ErrorCode.invalid_record,
            f"batch at base offset {base} with last offset delta {delta} is not a valid "
            f"offset range for {name}",
        )
    gap = base - partition.next_offset
    if gap > GAP_BATCH_OFFSETS_MAX * GAP_BATCHES_MAX:
        raise KafkaError(
            ErrorCode.invalid_record,
            f"batch at offset {base} leaves a gap of {gap} offsets after the log end "
            f"{partition.next_offset} of {name}; at most "
            f"{GAP_BATCH_OFFSETS_MAX * GAP_BATCHES_MAX} are spanned",
        )


def _advance_when_durable(
    partition: PartitionLog, end: int
) -> Callable[[asyncio.Future[None]], None]:
    """The high watermark moves to `end` once the batch's WAL write is durable (not on a
    failed write)."""

    def advance(durable: asyncio.Future[None]) -> None:
        if not durable.exception():
            partition.advance_high_watermark(end)

    return advance


def _mirrored_already(partition: PartitionLog, base: int, end: int) -> bool:
    """Whether offsets `base` to `end` (below the log end) were mirrored already: a
    cached batch starts at `base`, or they are older than anything cached (in objects)."""
    cache = partition.cache
    if not cache or base < cache[0].base_offset:
        return True
    index = bisect.bisect_left(cache, base, key=lambda b: b.base_offset)
    return index < len(cache) and cache[index].base_offset == base and end <= cache[-1].end_offset


def _durable_at(partition: PartitionLog, end_offset: int) -> asyncio.Future[None] | None:
    if partition.high_watermark >= end_offset:
        return None
    return asyncio.ensure_future(_wait_durable(partition, end_offset))


async def _wait_durable(partition: PartitionLog, end_offset: int) -> None:
    """A retried batch waits for its original; if batches were taken back meanwhile (the
    original's write may have failed) the retry fails too, retriably."""
    truncations = partition.truncations
    while partition.high_watermark < end_offset and not partition.deleted:
        if partition.truncations != truncations:
            raise WalWriteError("the first attempt of this batch was not written; retry")
        await partition.waiter()
    if partition.released:
        raise NotLeader(f"{partition.topic}-{partition.partition} was fenced: retry")


def _joined(
    first: asyncio.Future[None] | None, second: asyncio.Future[None] | None
) -> asyncio.Future[None] | None:
    """Done when both are (None stands for done), with the first failure."""
    if first is None or second is None:
        return first if second is None else second
    return asyncio.ensure_future(_both(first, second))


async def _both(first: asyncio.Future[None], second: asyncio.Future[None]) -> None:
    results = await asyncio.gather(first, second, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result


def _acknowledgement(
    partition: PartitionLog,
    durable: asyncio.Future[None],
    marked: asyncio.Future[None] | None,
    confirm: Callable[[PartitionLog], asyncio.Future[None]] | None = None,
) -> asyncio.Future[None]:
    """Resolved when the batch may be acknowledged: durable in the WAL, marked dirty in
    the metadata store (`marked`, None when it is already), its epoch confirmed after
    both (`confirm`, if given), and the partition still led here (a fenced partition
    stops acknowledging at once)."""
    # The durable future's own loop: asyncio.get_running_loop() is a getpid() on 3.11.
    acked: asyncio.Future[None] = durable.get_loop().create_future()
    if marked is not None:
        durable = _joined(durable, marked)  # type: ignore[assignment]

    def settle(written: asyncio.Future[None], confirmed: bool = False) -> None:
        if acked.done():
            _retrieve(written)  # no longer needed: not an unretrieved error either
            return
        error = written.exception()
        if error is not None:
            acked.set_exception(error)
        elif partition.released:
            acked.set_exception(
                NotLeader(f"{partition.topic}-{partition.partition} was fenced: retry")
            )
        elif confirm is not None and not confirmed:
            confirm(partition).add_done_callback(lambda read: settle(read, confirmed=True))
        else:
            acked.set_result(None)

    durable.add_done_callback(settle)
    # A request whose connection went away no longer awaits it: its failure (a fenced
    # partition's NotLeader, after a SIGSTOPped leader resumed) is not an unretrieved
    # error to log at every garbage collection.
    acked.add_done_callback(_retrieve)
    return acked


def _retrieve(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()
