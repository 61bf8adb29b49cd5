"""The transaction coordinator: one state machine per transactional.id (txn_state.py),
every transition stored in the metadata store before it is acted on, markers written to
each partition of a transaction through the storage engine.

A broker coordinates the transactional ids of the `__transaction_state` partitions it
leads (txn_shards.py, RFC 0004 §3). A transactional.id's requests are
serialised by its own lock, so a transition and the markers it needs are never
interleaved with another request for the same id. EndTxn answers once its Prepare state
is durable and its markers are written; a marker that cannot be written (a full disk)
leaves the Prepare state stored, and the timer retries it, as a restart does.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

from contextplane import limits
from contextplane.clock import Clock
from contextplane.coordinators.group_shards import GroupShards, ShardLeases
from contextplane.coordinators.producer_ids import ProducerIds
from contextplane.coordinators.txn_shards import TxnShardLoading
from contextplane.coordinators.txn_state import (
    TxnState,
    check_can_add,
    check_producer,
    end_decision,
    end_decision_v2,
    next_epoch,
    producer_id_not_assigned,
    state_of,
    transition,
)
from contextplane.errors import CoordinatorFenced, KafkaError
from contextplane.metadata.records import OffsetRow, TransactionRecord
from contextplane.metadata.store import MetadataStore
from contextplane.protocol.error_codes import ErrorCode
from contextplane.protocol.offsets_records import OFFSETS_TOPIC
from contextplane.tasks import KeyedLocks, cancel_and_wait, repeat_every

log = logging.getLogger(__name__)

S = TxnState
# (topic, partition, producer id, producer epoch, commit): resolves once durable.
MarkerWriter = Callable[[str, int, int, int, bool], Awaitable[None]]
OffsetsCommitted = Callable[[str, list[OffsetRow], int], None]


@dataclass(frozen=True, slots=True)
class TransactionConfig:
    max_timeout_ms: int
    abort_interval_ms: int
    id_expiration_ms: int = limits.TRANSACTIONAL_ID_EXPIRATION_MS
    remove_expired_interval_ms: int = limits.TRANSACTION_REMOVE_EXPIRED_INTERVAL_MS


class TransactionCoordinator(TxnShardLoading):
    def __init__(
        self,
        store: MetadataStore,
        producer_ids: ProducerIds,
        clock: Clock,
        config: TransactionConfig,
        write_marker: MarkerWriter,
        offsets_committed: OffsetsCommitted | None = None,
        leases: ShardLeases | None = None,
    ) -> None:
        self._store = store
        self._producer_ids = producer_ids
        self._clock = clock
        self._config = config
        self._write_marker = write_marker
        self._offsets_committed = offsets_committed or (lambda group, rows, ms: None)
        self._records: dict[str, TransactionRecord] = {}
        self._locks = KeyedLocks()
        self._timer: asyncio.Task[None] | None = None
        self._expiry: asyncio.Task[None] | None = None
        # group -> transactional id -> partitions with offsets pending in its transaction
        self._pending: dict[str, dict[str, set[tuple[str, int]]]] = {}
        self.shards = GroupShards(leases)
        self._loading: dict[int, asyncio.Future[None]] = {}

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Load the transactional ids of the shards led here (every id without leases);
        finish what a stop left in a Prepare state."""
        await self._load(None if self.shards.leases is None else self.shards.led())
        self._timer = asyncio.create_task(
            repeat_every(
                self._config.abort_interval_ms / 1000,
                self.abort_timed_out,
                "aborting timed-out transactions",
                log,
            ),
            name="transaction-timeouts",
        )
        self._expiry = asyncio.create_task(
            repeat_every(
                self._config.remove_expired_interval_ms / 1000,
                self.remove_expired,
                "removing expired transactional ids",
                log,
            ),
            name="transactional-id-expiry",
        )

    async def stop(self) -> None:
        await cancel_and_wait(self._timer)
        await cancel_and_wait(self._expiry)

    async def _finish_prepared(self, tids: list[str]) -> None:
        for tid in tids:
            record = self._records.get(tid)
            if record is not None and state_of(record) in (
                S.PREPARE_COMMIT,
                S.PREPARE_ABORT,
                S.PREPARE_EPOCH_FENCE,
            ):
                async with self._lock(tid):
                    await self._finish(tid)

    def _lock(self, tid: str) -> AbstractAsyncContextManager[None]:
        return self._locks.hold(tid)

    def record(self, tid: str) -> TransactionRecord | None:
        return self._records.get(tid)

    def records(self) -> list[TransactionRecord]:
        return list(self._records.values())

    async def _save(self, record: TransactionRecord) -> None:
        """Store a transition fenced by the id's shard; NOT_COORDINATOR if the shard
        moved (the write refused), or was handed over while it was written."""
        tid = record.transactional_id
        fence = self.fence(tid)
        try:
            await self._store.save_transaction(record, self._records.get(tid), fence)
        except CoordinatorFenced as fenced:
            raise self.fenced(tid, fenced) from None
        self._still_served(tid)
        self._records[tid] = record

    def _still_served(self, tid: str) -> None:
        """After a write: the id's shard was not unloaded meanwhile (its new coordinator
        reads what was written and goes on from it)."""
        if self.shards.leases is not None and not self.shards.serves(tid):
            raise KafkaError(ErrorCode.not_coordinator)

    def _now(self) -> int:
        return self._clock.wall_ms()

    # -- InitProducerId ----------------------------------------------------------------

    async def init_producer(
        self, tid: str, timeout_ms: int, expected_id: int = -1, expected_epoch: int = -1
    ) -> tuple[int, int]:
        """(producer id, epoch) for a transactional producer; fences every older one."""
        if not tid:
            raise KafkaError(ErrorCode.invalid_request, "empty transactional id")
        self.check_served(tid)
        if timeout_ms <= 0 or timeout_ms > self._config.max_timeout_ms:
            raise KafkaError(
                ErrorCode.invalid_transaction_timeout,
                f"transaction.timeout.ms={timeout_ms} is not within (0,"
                f" transaction.max.timeout.ms={self._config.max_timeout_ms}]",
            )
        async with self._lock(tid):
            now = self._now()
            record = self._records.get(tid)
            if record is None:
                producer_id = await self._producer_ids.allocate()
                record = TransactionRecord(tid, producer_id, 0, timeout_ms, S.EMPTY.value, now)
                await self._save(record)
                return producer_id, 0
            if expected_id >= 0 and not _matches_expected(record, expected_id, expected_epoch):
                raise KafkaError(ErrorCode.producer_fenced, "a newer producer fenced this one")
            state = state_of(record)
            if state is S.ONGOING:
                # Fence the producer of the open transaction: abort it with a bumped
                # epoch; the caller retries (CONCURRENT_TRANSACTIONS, as Kafka answers).
                await self._abort_with_bump(tid, record)
                raise KafkaError(ErrorCode.concurrent_transactions)
            if state not in (S.EMPTY, S.COMPLETE_COMMIT, S.COMPLETE_ABORT):
                raise KafkaError(ErrorCode.concurrent_transactions)
            if expected_id == record.producer_id and expected_epoch == record.epoch - 1:
                # KIP-360: the epoch was bumped already (a timeout, or this same call
                # answered before): the current epoch, without another bump, as Kafka.
                record = transition(record, S.EMPTY, now, timeout_ms=timeout_ms, start_ms=-1)
                record.partitions.clear()
                record.groups.clear()
                await self._save(record)
                return record.producer_id, record.epoch
            producer_id, epoch, previous = next_epoch(record)
            if producer_id < 0:
                producer_id = await self._producer_ids.allocate()
            record = transition(
                record,
                S.EMPTY,
                now,
                producer_id=producer_id,
                epoch=epoch,
                previous_producer_id=previous,
                timeout_ms=timeout_ms,
                start_ms=-1,
            )
            record.partitions.clear()
            record.groups.clear()
            await self._save(record)
            return producer_id, epoch

    # -- a transaction's partitions and groups -----------------------------------------

    async def add_partitions(
        self,
        tid: str,
        producer_id: int,
        epoch: int,
        partitions: list[tuple[str, int]],
        version: int = 0,
    ) -> None:
        """AddPartitionsToTxn; with `version` 2, the partitions a transactions v2
        producer's Produce names (KIP-890: the client sends no AddPartitionsToTxn)."""
        self.check_served(tid)
        async with self._lock(tid):
            record = check_producer(self._records.get(tid), producer_id, epoch)
            check_can_add(record)
            new = [p for p in partitions if p not in record.partitions]
            if state_of(record) is S.ONGOING and not new:
                return
            await self._save(self._ongoing(record, partitions=new, version=version))

    def verify_partitions(
        self, tid: str, producer_id: int, epoch: int, partitions: Iterable[tuple[str, int]]
    ) -> dict[tuple[str, int], ErrorCode]:
        """AddPartitionsToTxn v4+ VerifyOnly: per partition NONE if it is in `tid`'s
        transaction, else TRANSACTION_ABORTABLE; nothing is added. The producer's errors
        answer every partition, as Kafka's handleVerifyPartitionsInTransaction does (no
        lock: a read, and the leader validates again when it appends)."""
        wanted = list(partitions)
        record = self._records.get(tid)
        error: ErrorCode | None = None
        if not tid:
            error = ErrorCode.invalid_request
        elif (refused := self.refused(tid)) is not None:
            error = refused
        elif record is None or record.producer_id != producer_id:
            error = ErrorCode.invalid_producer_id_mapping
        elif record.epoch != epoch:
            error = ErrorCode.producer_fenced
        elif state_of(record) in (S.PREPARE_COMMIT, S.PREPARE_ABORT):
            error = ErrorCode.concurrent_transactions
        if error is not None:
            return dict.fromkeys(wanted, error)
        assert record is not None
        return {
            p: ErrorCode.none if p in record.partitions else ErrorCode.transaction_abortable
            for p in wanted
        }

    def missing_partitions(
        self, tid: str, partitions: Iterable[tuple[str, int]]
    ) -> list[tuple[str, int]]:
        """The partitions not (yet) in `tid`'s ongoing transaction."""
        record = self._records.get(tid)
        if record is None or state_of(record) is not S.ONGOING:
            return list(partitions)
        return [p for p in partitions if p not in record.partitions]

    async def add_offsets(self, tid: str, producer_id: int, epoch: int, group_id: str) -> None:
        self.check_served(tid)
        async with self._lock(tid):
            record = check_producer(self._records.get(tid), producer_id, epoch)
            check_can_add(record)
            if state_of(record) is S.ONGOING and group_id in record.groups:
                return
            await self._save(self._ongoing(record, groups=[group_id]))

    def _ongoing(
        self,
        record: TransactionRecord,
        partitions: Iterable[tuple[str, int]] = (),
        groups: Iterable[str] = (),
        version: int = 0,
    ) -> TransactionRecord:
        now = self._now()
        starting = state_of(record) is not S.ONGOING
        updated = transition(record, S.ONGOING, now)
        if starting:
            updated.partitions.clear()
            updated.groups.clear()
            updated.start_ms = now
            updated.client_transaction_version = version
        for partition in partitions:
            updated.partitions[partition] = False
        updated.groups.update(groups)
        return updated

    async def txn_offset_commit(
        self,
        tid: str,
        group_id: str,
        producer_id: int,
        epoch: int,
        rows: list[OffsetRow],
        check_group: Callable[[], None] = lambda: None,
        adds_group: bool = False,
        group_shard: int = -1,
    ) -> None:
        """Offsets pending until the transaction commits (dropped if it aborts). The
        transaction is verified first, then `check_group` (the group coordinator's member
        checks, which raise), in the order Kafka makes them. With `adds_group`
        (TxnOffsetCommit v5 of a transactions v2 producer) it adds the group to the
        transaction as AddOffsetsToTxn does. For an id coordinated by another broker
        (this broker the group's coordinator only) the stored transaction is checked in
        the store transaction that adds the offsets (`add_txn_offsets_checked`); the
        group must have been added by AddOffsetsToTxn, or its `__consumer_offsets`
        partition `group_shard` by AddPartitionsToTxn (transactions v2, as Kafka)."""
        if self.shards.leases is not None and self.refused(tid) is not None and not adds_group:
            check_group()
            producer = (producer_id, epoch)
            await self._store.add_txn_offsets_checked(tid, group_id, producer, rows, group_shard)
            return
        self.check_served(tid)
        async with self._lock(tid):
            record = check_producer(self._records.get(tid), producer_id, epoch)
            if adds_group and not (state_of(record) is S.ONGOING and group_id in record.groups):
                check_can_add(record)
                check_group()  # before the transaction starts for it
                record = self._ongoing(record, groups=[group_id], version=2)
                await self._save(record)
            if state_of(record) is not S.ONGOING or group_id not in record.groups:
                raise KafkaError(
                    ErrorCode.invalid_txn_state,
                    f"group {group_id!r} is not part of the ongoing transaction",
                )
            check_group()
            try:
                await self._store.add_txn_offsets(tid, group_id, rows, self.fence(tid))
            except CoordinatorFenced as fenced:
                raise self.fenced(tid, fenced) from None
            self._still_served(tid)
            pending = self._pending.setdefault(group_id, {}).setdefault(tid, set())
            pending.update((r.topic, r.partition) for r in rows)

    def unstable_offsets(self, group_id: str) -> set[tuple[str, int]]:
        """The group's partitions with offsets pending in a transaction: OffsetFetch with
        require_stable answers UNSTABLE_OFFSET_COMMIT for them, as Kafka does."""
        found: set[tuple[str, int]] = set()
        for partitions in self._pending.get(group_id, {}).values():
            found |= partitions
        return found

    def verify_produce(
        self,
        tid: str,
        producer_id: int,
        epoch: int,
        topic: str,
        partition: int,
        abortable: bool = False,
    ) -> None:
        """A transactional batch is accepted only for a partition of its producer's
        ongoing transaction (Kafka's transaction verification, AddPartitionsToTxn v4
        verifyOnly, and the errors a leader turns its answers into). A partition not in
        the transaction is INVALID_TXN_STATE, or with `abortable` (Produce v11+, whose
        clients know it) TRANSACTION_ABORTABLE."""
        record = self._records.get(tid)
        if record is None or record.producer_id != producer_id:
            raise KafkaError(ErrorCode.invalid_producer_id_mapping)
        if epoch != record.epoch:  # PRODUCER_FENCED, as a produce error
            raise KafkaError(ErrorCode.invalid_producer_epoch)
        if state_of(record) in (S.PREPARE_COMMIT, S.PREPARE_ABORT, S.PREPARE_EPOCH_FENCE):
            raise unverified(ErrorCode.concurrent_transactions)
        if state_of(record) is not S.ONGOING or (topic, partition) not in record.partitions:
            code = ErrorCode.transaction_abortable if abortable else ErrorCode.invalid_txn_state
            raise KafkaError(code, "Partition was not added to the transaction")

    # -- EndTxn ------------------------------------------------------------------------

    async def end_transaction(
        self, tid: str, producer_id: int, epoch: int, commit: bool, bump: bool = False
    ) -> tuple[int, int]:
        """EndTxn; the producer id and epoch for the next transaction. With `bump`
        (EndTxn v5, transactions v2) the epoch is bumped by every commit or abort: the
        markers carry the new epoch, a retry naming the epoch before gets the same
        answer, and an abort needs no partition added (txn_state.end_decision_v2)."""
        self.check_served(tid)
        async with self._lock(tid):
            record = self._records.get(tid)
            if record is None:
                raise producer_id_not_assigned()
            if bump or record.client_transaction_version >= 2:
                decision = end_decision_v2(record, producer_id, epoch, commit, bump)
            else:
                decision = end_decision(check_producer(record, producer_id, epoch), commit)
            if decision == "done":
                return record.producer_id, record.epoch
            prepare = S.PREPARE_COMMIT if commit else S.PREPARE_ABORT
            now = self._now()
            changes: dict[str, object] = {"client_transaction_version": 2 if bump else 0}
            if bump:
                # Up to Short.MaxValue: a new producer id follows at completion.
                changes["epoch"] = record.epoch + 1
            if state_of(record) is not S.ONGOING:
                changes["start_ms"] = now  # an abort with no partition added
            await self._save(transition(record, prepare, now, **changes))
            await self._finish(tid)
            current = self._records.get(tid)
            if current is None:  # its shard moved while the markers were written
                raise KafkaError(ErrorCode.not_coordinator)
            if state_of(current) is prepare and current.epoch > limits.PRODUCER_EPOCH_MAX:
                # The markers are not written yet (the timer retries them), so the new
                # producer id is not chosen: the client retries until it is.
                raise KafkaError(ErrorCode.concurrent_transactions)
            return current.producer_id, current.epoch

    async def _abort_with_bump(self, tid: str, record: TransactionRecord) -> None:
        """Fence an ongoing transaction's producer (InitProducerId, a timeout): bump the
        epoch, then abort with it."""
        producer_id, epoch, previous = next_epoch(record)
        if producer_id < 0:
            # Kafka aborts with the exhausted epoch and gives a new id at the next
            # InitProducerId; the markers must carry the old id.
            producer_id, epoch = record.producer_id, record.epoch
        fenced = transition(
            record,
            S.PREPARE_EPOCH_FENCE,
            self._now(),
            producer_id=producer_id,
            epoch=epoch,
            previous_producer_id=previous,
            # The client never saw this epoch: its EndTxn naming the one before is
            # fenced, not a retry (Kafka's fence clears lastProducerEpoch).
            client_transaction_version=0,
        )
        # Kafka keeps PrepareEpochFence in memory only and logs the PrepareAbort with the
        # bumped epoch: one durable write instead of two.
        await self._save(transition(fenced, S.PREPARE_ABORT, self._now()))
        await self._finish(tid)

    async def _finish(self, tid: str) -> None:
        """Write the markers of a Prepare state, then complete (under the id's lock).
        Failures leave the Prepare state for the timer (or the next start, or the
        shard's next coordinator) to finish."""
        record = self._records.get(tid)
        if record is None:
            return  # its shard was unloaded: its new coordinator finishes it
        if state_of(record) is S.PREPARE_EPOCH_FENCE:
            record = transition(record, S.PREPARE_ABORT, self._now())
            await self._save(record)
        commit = state_of(record) is S.PREPARE_COMMIT
        try:
            await asyncio.gather(
                *(
                    self._write_marker(topic, index, record.producer_id, record.epoch, commit)
                    for (topic, index), written in record.partitions.items()
                    # A group's shard, added by its coordinator's broker (transactions v2
                    # TxnOffsetCommit): the store settles its offsets with the state.
                    if not written and topic != OFFSETS_TOPIC
                )
            )
        except (KafkaError, OSError) as exc:
            log.warning(
                "transactional id %r: %s markers not written yet (%s); retrying",
                tid,
                "COMMIT" if commit else "ABORT",
                exc,
            )
            return
        done = transition(record, S.COMPLETE_COMMIT if commit else S.COMPLETE_ABORT, self._now())
        done.partitions.clear()
        done.groups.clear()
        if done.epoch > limits.PRODUCER_EPOCH_MAX:
            # A transactions v2 bump reached Short.MaxValue: the next transaction gets a
            # new producer id (Kafka's nextProducerId).
            done.previous_producer_id = done.producer_id
            done.producer_id = await self._producer_ids.allocate()
            done.epoch = 0
        now = self._now()
        try:
            moved = await self._store.complete_transaction(done, commit, now, self.fence(tid))
        except CoordinatorFenced as fenced:
            raise self.fenced(tid, fenced) from None
        if tid not in self._records:
            return  # unloaded while it was written: the new coordinator reads it
        self._records[tid] = done
        for group_id in record.groups:
            by_tid = self._pending.get(group_id, {})
            by_tid.pop(tid, None)
            if not by_tid:
                self._pending.pop(group_id, None)
        for group_id, rows in moved.items():
            self._offsets_committed(group_id, rows, now)

    # -- timeouts ----------------------------------------------------------------------

    async def abort_timed_out(self) -> int:
        """Abort (with an epoch bump) every transaction open longer than its timeout,
        and finish Prepare states whose markers failed; returns how many were aborted.
        Up to TXN_ABORT_CONCURRENCY run at once, so that their markers share the WAL's
        group commits: one at a time, a backlog of thousands pinned the LSO of the
        partitions they wrote for minutes."""
        now = self._now()
        due = iter(
            [
                (tid, record)
                for tid, record in self._records.items()
                if state_of(record) in (S.PREPARE_COMMIT, S.PREPARE_ABORT, S.PREPARE_EPOCH_FENCE)
                or (state_of(record) is S.ONGOING and record.start_ms + record.timeout_ms <= now)
            ]
        )
        failures: list[BaseException] = []

        async def settle(tid: str, record: TransactionRecord) -> int:
            async with self._lock(tid):
                if tid not in self._records or self._records[tid] is not record:
                    return 0  # it moved on (or expired) meanwhile
                if not self.shards.serves(tid):
                    return 0  # moved: its new coordinator settles it
                if state_of(record) is not S.ONGOING:
                    await self._finish(tid)
                    return 0
                log.info(
                    "transactional id %r: aborting a transaction open longer than %d ms",
                    tid,
                    record.timeout_ms,
                )
                await self._abort_with_bump(tid, record)
                return 1

        async def worker() -> int:
            aborted = 0
            for tid, record in due:  # one iterator shared by the workers
                try:
                    aborted += await settle(tid, record)
                except Exception as exc:  # the others go on; the pass reports the first
                    failures.append(exc)
            return aborted

        aborted = sum(
            await asyncio.gather(*(worker() for _ in range(limits.TXN_ABORT_CONCURRENCY)))
        )
        if failures:
            raise failures[0]
        return aborted

    # -- expiration --------------------------------------------------------------------

    async def remove_expired(self) -> list[str]:
        """Remove the transactional ids with no transaction (Empty, CompleteCommit,
        CompleteAbort) for longer than `transactional.id.expiration.ms`, durably, as
        Kafka's TransactionStateManager does (through Dead); returns those removed."""
        removed = []
        for tid, record in list(self._records.items()):
            if not self._expired(record):
                continue
            async with self._lock(tid):
                current = self._records.get(tid)
                if current is not record or not self._expired(current):
                    continue  # it moved on meanwhile
                try:
                    await self._store.remove_transaction(tid, self.fence(tid))
                except CoordinatorFenced as fenced:
                    self.fenced(tid, fenced)
                    continue
                except KafkaError:  # moved: its new coordinator expires it
                    continue
                self._records.pop(tid, None)
                removed.append(tid)
        if removed:
            log.info("removed %d expired transactional ids", len(removed))
        return removed

    def _expired(self, record: TransactionRecord) -> bool:
        return (
            state_of(record) in (S.EMPTY, S.COMPLETE_COMMIT, S.COMPLETE_ABORT)
            and record.update_ms + self._config.id_expiration_ms <= self._now()
        )


def unverified(code: ErrorCode) -> KafkaError:
    """A retriable verification answer older clients may not retry: Kafka's leader sends
    NOT_ENOUGH_REPLICAS (no metadata refresh) naming the coordinator's error."""
    return KafkaError(
        ErrorCode.not_enough_replicas,
        "Unable to verify the partition has been added to the transaction. Underlying"
        f" error: {code.name.upper()}",
    )


def _matches_expected(record: TransactionRecord, producer_id: int, epoch: int) -> bool:
    """KIP-360: a producer recovering from an abortable error names the id and epoch it
    had; they must be the current ones, or the ones a coordinator bump replaced."""
    if record.producer_id == producer_id and epoch in (record.epoch, record.epoch - 1):
        return True
    return record.previous_producer_id == producer_id
