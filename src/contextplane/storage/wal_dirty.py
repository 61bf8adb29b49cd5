"""The dirty protocol of the local WAL (RFC 0004 §5): no acknowledgement unless the
metadata store says this broker's WAL may hold acknowledged records of the partition.

A partition is dirty while its leader's WAL holds acknowledged records in no committed
object: another broker claiming it would lose them, so the claim refuses it
(`SqlEngine.claim_leadership`). Each `PartitionLog` carries a four-state `wal_state`:

- clean → setting: the first append after the partition was clean asks for the mark;
  the marks of every partition that needs one are written in one transaction (`UPDATE
  … SET wal_dirty = epoch WHERE leader_epoch = epoch`), the batches' acknowledgements
  waiting for it beside their WAL writes. A row at another epoch matches nothing: the
  partition was claimed elsewhere, it is released here and its batches answer
  NOT_LEADER_OR_FOLLOWER, never an acknowledgement.
- setting → dirty once that transaction committed; appends in dirty cost nothing more.
- dirty → clearing when an object commit is sent whose range ends at the partition's
  next offset: every record appended so far is in it, and the commit clears the mark in
  its own transaction (where the epoch is still the committer's).
- clearing → clean when the commit returns, unless an append came meanwhile: that
  append waits for the commit's return and then sets the mark again (marking before the
  clear is known could be undone by the clear, or by a retry of the commit).
- clearing → clean as well when the commit fails with its outcome unknown (the store out
  of reach: it may have cleared the mark before its reply was lost). Its retry then
  clears nothing (`commit_unknown`), so a mark written meanwhile, or owed from the outage
  window, survives it; a waiting append is marked as from clean, which is how an
  outage answers it (acknowledged and owed inside the window, refused outside) instead
  of waiting for the store's return. Once the retry is committed, the mark it did not
  clear is cleared on its own if every record is uploaded (`clear_uploaded`).

The cost is one transaction per idle-to-busy transition of a partition (shared by every
partition of that moment). With an embedded SQLite store no other broker can claim
anything, so the marks are not written at all (`enabled`).

The outage path: when a mark cannot be written (the store is out of reach) and
`may_ack_unmarked()` says so (cluster/registry.py: this broker's row carries the
`unmarked_acks` flag, which makes every partition it leads count as dirty, and its lease
is certainly still valid by its own clock), the batches are acknowledged all the same
and the partition goes to `owed`: its mark is written by the next heartbeat that reaches
the store, in the transaction that renews the lease (`owed`, `owed_written`), or by an
append once the window has closed; never cleared before it is written. Past the window
an append to a clean or owed partition waits for its mark again, and is refused
(KAFKA_STORAGE_ERROR) while it cannot be written.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

from contextplane.errors import KafkaError
from contextplane.metadata.records import PartitionRecord
from contextplane.metadata.store import MetadataStore
from contextplane.protocol.error_codes import ErrorCode
from contextplane.storage.partition import PartitionLog, WalState

log = logging.getLogger(__name__)


class DirtyMarks:
    def __init__(
        self, metadata: MetadataStore, on_stale: Callable[[int], None], enabled: bool
    ) -> None:
        """`on_stale(stream_id)` releases a partition whose mark found another epoch."""
        self._metadata = metadata
        self._on_stale = on_stale
        self.enabled = enabled
        self._pending: dict[int, PartitionLog] = {}
        self._writer: asyncio.Task[None] | None = None
        self.transactions = 0  # mark transactions written (tests and measurements)
        # The partitions whose mark is owed (acknowledged without it), by stream.
        self._owed: dict[int, PartitionLog] = {}
        # Whether a batch may be acknowledged without its mark now (the registry's
        # outage window; never, until the broker wires it).
        self.may_ack_unmarked: Callable[[], bool] = lambda: False
        self._clearers: set[asyncio.Task[None]] = set()

    def owed(self) -> dict[int, int]:
        """The marks owed (stream -> epoch), for the heartbeat or the clean stop to write."""
        for stream_id in [s for s, p in self._owed.items() if p.deleted]:
            del self._owed[stream_id]
        return {stream_id: p.leader_epoch for stream_id, p in self._owed.items()}

    def owed_written(self, owed: dict[int, int], marked: frozenset[int]) -> None:
        """A heartbeat wrote `owed` (as `owed()` gave it): those in `marked` are dirty in
        the store now. One not marked is no longer led here at that epoch."""
        uploaded = []
        for stream_id, epoch in owed.items():
            partition = self._owed.get(stream_id)
            if partition is None or partition.leader_epoch != epoch:
                continue
            del self._owed[stream_id]
            if stream_id in marked:
                if partition.wal_state is WalState.OWED:
                    partition.wal_state = WalState.DIRTY
                    if partition.object_end_offset == partition.next_offset:
                        uploaded.append(partition)
            elif not partition.deleted:
                log.warning(
                    "%s-%d: its owed dirty mark found leader epoch %d moved on",
                    partition.topic,
                    partition.partition,
                    epoch,
                )
        if owed and not self._owed:
            log.info("every owed dirty mark is written")
        if uploaded:
            # Uploaded while the mark was owed (an owed partition is not cleared by its
            # commits): no later commit may come to clear it, so clear it now.
            self._start_clear(uploaded)

    def commit_unknown(self, partitions: Iterable[PartitionLog]) -> None:
        """A commit meant to clear these partitions' marks failed, its outcome unknown:
        they count as clean (the next append marks them again), and the caller's retry
        must not clear them."""
        for partition in partitions:
            self.cleared(partition, committed=True)

    def clear_uploaded(self, partitions: Iterable[PartitionLog]) -> None:
        """A retried commit that was not allowed to clear these partitions' marks is
        committed: clear those with every record uploaded and no append since."""
        uploaded = [
            p
            for p in partitions
            if p.wal_state is WalState.CLEAN
            and p.dirty_marked is None
            and not p.deleted
            and p.object_end_offset == p.next_offset
        ]
        if self.enabled and uploaded:
            self._start_clear(uploaded)

    def _start_clear(self, partitions: list[PartitionLog]) -> None:
        task = asyncio.create_task(self._clear(partitions), name="wal-clean")
        self._clearers.add(task)  # held: the loop keeps only a weak reference
        task.add_done_callback(self._clearers.discard)

    async def _clear(self, partitions: list[PartitionLog]) -> None:
        """Clear the marks of partitions whose every record is in a committed object, as
        a clearing commit would (an append meanwhile waits, then marks again)."""
        for partition in partitions:
            partition.wal_state = WalState.CLEARING
        try:
            await self._metadata.settle_wal_dirty(
                {}, {p.stream_id: p.leader_epoch for p in partitions}
            )
        except Exception as exc:  # noqa: BLE001 - maybe left dirty: cleared by a later commit
            # Its outcome is unknown, so the partitions count as clean: counting them dirty
            # would acknowledge appends unmarked if the clear did commit.
            log.warning("could not clear %d dirty marks: %r", len(partitions), exc)
        for partition in partitions:
            self.cleared(partition, committed=True)

    def before_ack(self, partition: PartitionLog) -> asyncio.Future[None] | None:
        """What an acknowledgement of `partition` must wait for besides its WAL write:
        None when the partition is marked dirty already."""
        state = partition.wal_state
        if not self.enabled or state is WalState.DIRTY:
            return None
        if state is WalState.OWED and self.may_ack_unmarked():
            return None
        marked = partition.dirty_marked
        if marked is None:
            marked = partition.dirty_marked = asyncio.get_running_loop().create_future()
            if state in (WalState.CLEAN, WalState.OWED):
                self._queue(partition)
            # clearing: queued when the clearing commit returns (`cleared`)
        return marked

    def clearing(self, partition: PartitionLog, range_end: int) -> bool:
        """At an object commit's sending: whether it clears the mark (it publishes every
        record appended so far, and no mark is being written)."""
        if (
            not self.enabled
            or range_end != partition.next_offset
            or partition.dirty_marked is not None
            or partition.wal_state not in (WalState.DIRTY, WalState.CLEAN)
        ):
            return False
        partition.wal_state = WalState.CLEARING
        return True

    def cleared(self, partition: PartitionLog, committed: bool) -> None:
        """The clearing commit's outcome is known."""
        if partition.wal_state is not WalState.CLEARING:
            return
        if partition.dirty_marked is not None and not partition.deleted:
            self._queue(partition)  # appended meanwhile: marked again before its ack
        else:
            partition.wal_state = WalState.CLEAN if committed else WalState.DIRTY
            _resolve(partition, None)

    async def settle_opened(
        self, partitions: Iterable[PartitionLog], records: Iterable[PartitionRecord]
    ) -> None:
        """After a start's replay: a partition with replayed records past its objects is
        dirty, one marked dirty with nothing left to replay is clean again (one
        transaction). `records` are the partitions as read before the claim."""
        stored = {r.stream_id: r.wal_dirty for r in records}
        dirty: dict[int, int] = {}
        clean: dict[int, int] = {}
        for partition in partitions:
            if partition.next_offset > partition.object_end_offset:
                partition.wal_state = WalState.DIRTY
                dirty[partition.stream_id] = partition.leader_epoch
            elif stored.get(partition.stream_id, 0):
                clean[partition.stream_id] = partition.leader_epoch
        if self.enabled and (dirty or clean):
            await self._metadata.settle_wal_dirty(dirty, clean)

    def close(self) -> None:
        """A stop: nothing more is acknowledged."""
        for task in (self._writer, *self._clearers):
            if task is not None:
                task.cancel()
        error = KafkaError(ErrorCode.not_leader_or_follower, "the broker is stopping")
        for partition in self._pending.values():
            _resolve(partition, error)
        self._pending.clear()

    def _queue(self, partition: PartitionLog) -> None:
        partition.wal_state = WalState.SETTING
        self._pending[partition.stream_id] = partition
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write(), name="wal-dirty")

    async def _write(self) -> None:
        """One transaction for every partition waiting for its mark, until none waits."""
        while self._pending:
            batch, self._pending = self._pending, {}
            epochs = {s: p.leader_epoch for s, p in batch.items() if not p.deleted}
            try:
                marked = await self._metadata.mark_wal_dirty(epochs) if epochs else set()
            except Exception as exc:  # noqa: BLE001 - answered to the producers, retried by them
                self._not_marked(batch, exc)
                continue
            self.transactions += 1
            for stream_id, partition in batch.items():
                self._owed.pop(stream_id, None)
                if stream_id in marked:
                    partition.wal_state = WalState.DIRTY
                else:
                    partition.wal_state = WalState.CLEAN
                    if not partition.deleted:
                        log.warning(
                            "%s-%d: its leader epoch %d moved on in the metadata store;"
                            " releasing it, nothing acknowledged",
                            partition.topic,
                            partition.partition,
                            partition.leader_epoch,
                        )
                        self._on_stale(stream_id)  # released: its acks answer NOT_LEADER
                _resolve(partition, None)

    def _not_marked(self, batch: dict[int, PartitionLog], exc: Exception) -> None:
        """The mark transaction failed: within the outage window the batches are
        acknowledged and their marks owed; else they are refused (retriable)."""
        if self.may_ack_unmarked():
            if not self._owed:
                log.warning(
                    "acknowledging without dirty marks while the metadata store is out of"
                    " reach (%r); the marks are owed to the next heartbeat",
                    exc,
                )
            for stream_id, partition in batch.items():
                if partition.deleted:
                    _resolve(partition, KafkaError(ErrorCode.not_leader_or_follower, "gone"))
                    continue
                partition.wal_state = WalState.OWED
                self._owed[stream_id] = partition
                _resolve(partition, None)
            return
        log.warning("could not mark %d partitions dirty: %r", len(batch), exc)
        error = KafkaError(
            ErrorCode.kafka_storage_error, f"the metadata store did not record the write: {exc}"
        )
        for stream_id, partition in batch.items():
            # (one whose records were acknowledged unmarked stays owed)
            partition.wal_state = WalState.OWED if stream_id in self._owed else WalState.CLEAN
            _resolve(partition, error)


def _resolve(partition: PartitionLog, error: BaseException | None) -> None:
    marked, partition.dirty_marked = partition.dirty_marked, None
    if marked is None or marked.done():
        return
    if error is None:
        marked.set_result(None)
    else:
        marked.set_exception(error)
