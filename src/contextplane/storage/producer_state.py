"""Idempotent producer state per partition: the one place sequence numbers are checked.

Kafka keeps, per producer id, the epoch and the metadata of the last five batches; a
retried batch that matches one of them is a duplicate and gets its original offsets back,
a batch that does not continue the sequence is OUT_OF_ORDER_SEQUENCE_NUMBER, a new epoch
must start at sequence 0, and a batch from an older epoch is fenced with
INVALID_PRODUCER_EPOCH. A producer id with no state is accepted at any sequence. A
transaction marker (control batch) is fenced the same way but carries no sequence; one
of a newer epoch (a coordinator's bump) starts the producer's sequences again.

A batch is recorded when its offsets are assigned, before it is durable. If its WAL write
fails, `rollback` restores each producer's state as it was before the first failed batch
(an undo entry per recorded batch, dropped once `commit` says the batch is durable), so
the producer's retry is appended again rather than "deduplicated" onto offsets that were
never written. Until it is, the producer's later batches (pipelined behind the failed one)
are refused with the retriable KAFKA_STORAGE_ERROR, not OUT_OF_ORDER_SEQUENCE_NUMBER: as
Kafka answers them after a failed append (its log directory goes offline). The sequence
error would tell librdkafka the failed batch was lost, and it bumps the producer's epoch
and sends that batch again under new sequences; if the write had in fact become durable
(an object WAL PUT that the store took while this broker waited, which a broker taking
the partition over replays), the log would hold the record twice.

Every change to a producer's entry is noted in `touched`: an object commit writes the
rows of those producers only (`row_as_of`), and a start rebuilds the table from the rows
(`from_rows`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from contextplane import limits
from contextplane.errors import KafkaError
from contextplane.metadata.records import ProducerRow
from contextplane.protocol.error_codes import ErrorCode
from contextplane.protocol.records import BatchHeader
from contextplane.storage.touched import Touched

_SEQUENCE_MODULUS = 2**31


@dataclass(slots=True)
class BatchMetadata:
    first_sequence: int
    last_sequence: int
    base_offset: int
    last_offset: int
    max_timestamp: int


@dataclass(slots=True)
class ProducerEntry:
    epoch: int
    batches: list[BatchMetadata] = field(default_factory=list)

    @property
    def last_sequence(self) -> int:
        return self.batches[-1].last_sequence if self.batches else -1


@dataclass(slots=True)
class _Undo:
    base_offset: int
    producer_id: int
    prior: ProducerEntry | None  # a copy of the entry before this batch, None if new


class ProducerStateTable:
    def __init__(self) -> None:
        self.producers: dict[int, ProducerEntry] = {}
        self._undo: deque[_Undo] = deque()
        self.touched = Touched()
        # Producers whose batches a failed write rolled back, until they append again:
        # the epoch and first sequence of the earliest batch rolled back.
        self._rolled_back: dict[int, tuple[int, int]] = {}

    def check_sequence(self, header: BatchHeader) -> BatchMetadata | None:
        """Return the earlier batch if `header` is a duplicate; raise if it is invalid."""
        if header.producer_id < 0:
            return None
        entry = self.producers.get(header.producer_id)
        if entry is None:
            # Kafka accepts the first batch of a producer it has no state for at any
            # sequence (its state may have expired or been trimmed with the log), but
            # not one pipelined behind this producer's first batch whose write failed.
            failed = self._rolled_back.get(header.producer_id)
            if failed is not None and not header.is_control:
                epoch, sequence = failed
                if header.producer_epoch == epoch and header.base_sequence != sequence:
                    raise _behind_failed(header.base_sequence, sequence)
            return None
        if header.producer_epoch < entry.epoch:
            raise KafkaError(
                ErrorCode.invalid_producer_epoch,
                f"producer epoch {header.producer_epoch} is older than {entry.epoch}",
            )
        if header.is_control:
            return None  # a transaction marker carries no sequence
        if header.producer_epoch > entry.epoch:
            if header.base_sequence != 0:
                raise KafkaError(
                    ErrorCode.out_of_order_sequence_number,
                    f"new epoch {header.producer_epoch} must start at sequence 0",
                )
            return None
        for batch in entry.batches:
            if (
                batch.first_sequence == header.base_sequence
                and batch.last_sequence == header.last_sequence
            ):
                return batch
        expected = (entry.last_sequence + 1) % _SEQUENCE_MODULUS
        if header.base_sequence != expected:
            if header.producer_id in self._rolled_back:
                raise _behind_failed(header.base_sequence, expected)
            raise KafkaError(
                ErrorCode.out_of_order_sequence_number,
                f"expected sequence {expected}, got {header.base_sequence}",
            )
        return None

    def record(self, header: BatchHeader, base_offset: int) -> None:
        if header.producer_id < 0:
            return
        if self._rolled_back:  # empty but after a failed write: nothing on the hot path
            self._rolled_back.pop(header.producer_id, None)
        entry = self.producers.get(header.producer_id)
        if entry is not None and entry.batches and base_offset <= entry.batches[-1].base_offset:
            return  # WAL replay of a batch the snapshot already holds
        if header.is_control and entry is not None and header.producer_epoch <= entry.epoch:
            return  # a marker of the current epoch leaves sequences as they are
        self.touched.touch(header.producer_id)
        self._undo.append(
            _Undo(
                base_offset,
                header.producer_id,
                None if entry is None else ProducerEntry(entry.epoch, list(entry.batches)),
            )
        )
        if entry is None or header.producer_epoch > entry.epoch:
            entry = ProducerEntry(header.producer_epoch)
            self.producers[header.producer_id] = entry
        if header.is_control:
            return  # a marker of a newer epoch: its sequences start again at 0
        entry.batches.append(
            BatchMetadata(
                header.base_sequence,
                header.last_sequence,
                base_offset,
                base_offset + header.last_offset_delta,
                header.max_timestamp,
            )
        )
        del entry.batches[: -limits.PRODUCER_BATCHES_RETAINED]

    def commit(self, end_offset: int) -> None:
        """Batches below `end_offset` are durable: they can no longer be rolled back."""
        undo = self._undo
        while undo and undo[0].base_offset < end_offset:
            undo.popleft()

    def rollback(self, offset: int) -> None:
        """Forget every batch recorded at or after `offset` (its write failed)."""
        undo = self._undo
        while undo and undo[-1].base_offset >= offset:
            step = undo.pop()
            self.touched.touch(step.producer_id)
            current = self.producers.get(step.producer_id)
            if current is not None:
                for batch in current.batches:
                    if batch.base_offset == step.base_offset:
                        failed = (current.epoch, batch.first_sequence)
                        self._rolled_back[step.producer_id] = failed
            if step.prior is None:
                self.producers.pop(step.producer_id, None)
            else:
                self.producers[step.producer_id] = step.prior

    def expire(self, cutoff_ms: int, durable_end: int, keep: set[int]) -> int:
        """Forget producers whose last batch is durable (below `durable_end`) and older
        than `cutoff_ms`, except those in `keep` (an open transaction): Kafka's
        producer.id.expiration.ms, over the batch's max timestamp as Kafka's
        lastTimestamp. A producer with no batch since its epoch was bumped by a marker
        stays. Returns how many were forgotten."""
        expired = [
            producer_id
            for producer_id, entry in self.producers.items()
            if entry.batches
            and entry.batches[-1].max_timestamp < cutoff_ms
            and entry.batches[-1].last_offset < durable_end
            and producer_id not in keep
        ]
        for producer_id in expired:
            del self.producers[producer_id]
            self.touched.touch(producer_id)
        # A failed first batch whose producer never came back is forgotten here too.
        for producer_id in [p for p in self._rolled_back if p not in self.producers]:
            del self._rolled_back[producer_id]
        return len(expired)

    def row_as_of(self, producer_id: int, end_offset: int) -> tuple[ProducerRow | None, bool]:
        """The producer's row as an object commit ending at `end_offset` stores it (None:
        no state), and whether it holds batches from `end_offset` on, which a later
        commit must write (they are only in the WAL, maybe not even durable yet)."""
        entry = self.producers.get(producer_id)
        if entry is None:
            return None, False
        batches = [vars_of(b) for b in entry.batches if b.last_offset < end_offset]
        return ProducerRow(producer_id, entry.epoch, batches), len(batches) < len(entry.batches)

    @classmethod
    def from_rows(cls, rows: Iterable[ProducerRow]) -> ProducerStateTable:
        table = cls()
        for row in rows:
            if row.epoch is not None:
                table.producers[row.producer_id] = ProducerEntry(
                    row.epoch, [BatchMetadata(*b) for b in row.batches]
                )
        return table


def _behind_failed(sequence: int, expected: int) -> KafkaError:
    return KafkaError(
        ErrorCode.kafka_storage_error,
        f"a batch of this producer before sequence {sequence} could not be written"
        f" (expected sequence {expected}): retry it first",
    )


def vars_of(batch: BatchMetadata) -> tuple[int, int, int, int, int]:
    return (
        batch.first_sequence,
        batch.last_sequence,
        batch.base_offset,
        batch.last_offset,
        batch.max_timestamp,
    )
