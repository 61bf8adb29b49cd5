"""Which transactional ids this broker's transaction coordinator serves (RFC 0004 §3):
the part of `TransactionCoordinator` that follows the `__transaction_state` partitions
led here.

A transactional id's shard is its `__transaction_state` partition (`partition_for`,
Kafka's `abs(hashCode) % 50`) and its coordinator is that partition's leader, as in
Kafka. The reconciler loads a shard when it opens the partition (its ids as stored, its
Prepare states finished) and unloads it before handing the partition over. Every
transition is stored with the shard's (stream, leader epoch), checked in the store
transaction that writes it, so a coordinator that lost its shard while paused commits
nothing: it answers NOT_COORDINATOR, drops the shard and lets the partition go.

Without leases (a coordinator built alone, as unit tests do) every id is served and
nothing is fenced.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from contextplane.coordinators.group_shards import GroupShards, NotServed
from contextplane.errors import CoordinatorFenced, KafkaError
from contextplane.metadata.records import TransactionRecord
from contextplane.metadata.store import MetadataStore
from contextplane.protocol.error_codes import ErrorCode
from contextplane.tasks import log_round_failure

log = logging.getLogger(__name__)

TXN_STATE_TOPIC = "__transaction_state"


class TxnShardLoading:
    _store: MetadataStore
    shards: GroupShards
    _records: dict[str, TransactionRecord]
    _pending: dict[str, dict[str, set[tuple[str, int]]]]
    _loading: dict[int, asyncio.Future[None]]
    # Finish the Prepare states of the ids just loaded (the coordinator's, under locks).
    _finish_prepared: Callable[[list[str]], Awaitable[None]]

    async def _load(self, shards: set[int] | None) -> None:
        """The stored ids of `shards` (None: every id) into memory."""
        wanted = (lambda tid: True) if shards is None else self.shards.in_shards(shards)
        loaded = [r for r in await self._store.transactions() if wanted(r.transactional_id)]
        for record in loaded:
            self._records[record.transactional_id] = record
        for tid, group_id, topic, partition in await self._store.pending_txn_offsets():
            if wanted(tid):
                by_tid = self._pending.setdefault(group_id, {})
                by_tid.setdefault(tid, set()).add((topic, partition))
        if shards is not None:
            self.shards.loaded |= shards
        await self._finish_prepared([r.transactional_id for r in loaded])

    async def load_shard(self, shard: int) -> None:
        """This broker now leads `__transaction_state` partition `shard`: serve its
        transactional ids as stored and finish what their last coordinator left in a
        Prepare state. A shard still loaded from an earlier lease is loaded afresh."""
        await asyncio.shield(self._loading.get(shard) or self._start_loading(shard))

    def _start_loading(self, shard: int) -> asyncio.Future[None]:
        task = self._loading[shard] = asyncio.ensure_future(self._load_afresh(shard))
        return task

    async def _load_afresh(self, shard: int) -> None:
        try:
            if shard in self.shards.loaded:
                self.unload_shard(shard)
            self.shards.unloaded_at.pop(shard, None)
            await self._load({shard})
            log.info("transaction coordinator: loaded shard %d", shard)
        finally:
            self._loading.pop(shard, None)

    def is_loaded(self, shard: int) -> bool:
        return shard in self.shards.loaded

    def unload_shard(self, shard: int) -> None:
        """`shard` is handed over (or fenced): its ids leave this coordinator without a
        write; their next request answers NOT_COORDINATOR."""
        self.shards.forget(shard)
        wanted = self.shards.in_shards({shard})
        for tid in [t for t in self._records if wanted(t)]:
            del self._records[tid]
        for group_id, by_tid in list(self._pending.items()):
            for tid in [t for t in by_tid if wanted(t)]:
                del by_tid[tid]
            if not by_tid:
                del self._pending[group_id]
        log.info("transaction coordinator: unloaded shard %d", shard)

    def refused(self, tid: str) -> ErrorCode | None:
        """Why a request for `tid` is not served here, or None (`GroupShards.refusal`:
        a shard led here and never loaded at its epoch starts loading)."""
        return self.shards.refusal(tid, self._loading, self._load_in_background)

    def _load_in_background(self, shard: int) -> None:
        self._start_loading(shard).add_done_callback(_log_failed_load)

    def check_served(self, tid: str) -> None:
        """Raise the error `refused` names."""
        code = self.refused(tid)
        if code is not None:
            raise KafkaError(code, f"transactional id {tid!r} is not coordinated here")

    def fence(self, tid: str) -> tuple[int, int] | None:
        """The (stream, epoch) a write for `tid` is fenced by (None without leases);
        NOT_COORDINATOR once its shard is not served here."""
        try:
            return self.shards.fence(tid)
        except NotServed:
            raise KafkaError(ErrorCode.not_coordinator) from None

    def fenced(self, tid: str, fenced: CoordinatorFenced) -> KafkaError:
        """A write found `tid`'s shard at another epoch: another broker leads it now."""
        log.warning("transactional id %r: %s; unloading its shard", tid, fenced)
        self.unload_shard(self.shards.shard(tid))
        if self.shards.leases is not None:
            self.shards.leases.release(fenced.stream_id)
        return KafkaError(ErrorCode.not_coordinator, str(fenced))


def _log_failed_load(task: asyncio.Future[None]) -> None:
    """A load a request started failed: logged, and the next request tries again."""
    if not task.cancelled() and (exc := task.exception()) is not None:
        log_round_failure(log, "loading a transaction coordinator shard", exc)
