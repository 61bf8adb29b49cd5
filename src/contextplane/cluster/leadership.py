"""Partition leadership and fencing, in one place.

A partition has one leader at a time, fenced by its leader epoch in the metadata store.
This module is the only one that claims leadership, compares epochs and decides what a
difference means:

* behind the stored epoch: another broker took the partition over. This broker stops
  acknowledging writes to it and releases it (`on_release`): an operating condition,
  answered to clients as NOT_LEADER_OR_FOLLOWER.
* ahead of the stored epoch: impossible, since epochs only grow and only through
  `claim`; a programmer error, asserted.

The storage engine asks `check_commit` about every object commit (the store checks each
partition's epoch in the commit's transaction and leaves mismatching partitions out), so
one fenced partition never stalls the others that share its object.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

from contextplane.errors import KafkaError
from contextplane.metadata.records import ClaimOutcome, CommitOutcome, PartitionRecord
from contextplane.metadata.store import MetadataStore
from contextplane.protocol.error_codes import ErrorCode

log = logging.getLogger(__name__)


class NotLeader(KafkaError):
    """This broker does not lead the partition (it never did, or it was fenced)."""

    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.not_leader_or_follower, message)


class MoveTimedOut(RuntimeError):
    """A handover's source did not upload the partition's tail within
    `partition.move.timeout.ms`: it serves the partition again, and the move is left to
    failover (its target claims it once the source's lease expires, never before)."""

    def __init__(self, stream_id: int) -> None:
        super().__init__(f"stream {stream_id}: not released within partition.move.timeout.ms")
        self.stream_id = stream_id


def is_fenced(stream_id: int, local_epoch: int, stored_epoch: int) -> bool:
    """The epoch rule: behind the stored epoch is fenced; ahead of it cannot happen."""
    assert local_epoch <= stored_epoch, (
        f"stream {stream_id}: local leader epoch {local_epoch} is ahead of the stored"
        f" {stored_epoch}; epochs only grow through Leadership.claim"
    )
    return local_epoch < stored_epoch


class Leadership:
    def __init__(
        self, metadata: MetadataStore, node_id: int, on_release: Callable[[int], None]
    ) -> None:
        self._metadata = metadata
        self._node_id = node_id
        self._on_release = on_release
        self._epochs: dict[int, int] = {}  # stream -> the epoch this broker leads it at
        self.released: set[int] = set()  # fenced streams: not led any more
        # Bumped whenever what this broker leads changes (caches of Metadata answers).
        self.generation = 0
        self._confirming: dict[int, list[asyncio.Future[None]]] = {}
        self._confirmer: asyncio.Task[None] | None = None

    def epoch(self, stream_id: int) -> int:
        return self._epochs[stream_id]

    def leads(self, stream_id: int) -> bool:
        return stream_id in self._epochs

    def led(self) -> frozenset[int]:
        """The streams this broker leads now."""
        return frozenset(self._epochs)

    async def claim(
        self, records: Iterable[PartitionRecord], unclean: frozenset[int] = frozenset()
    ) -> ClaimOutcome:
        """Lead each partition at its stored epoch + 1, in one metadata transaction.

        The outcome's `claimed` holds the epoch of each partition claimed; a partition
        whose epoch moved since `records` were read (another broker claimed it
        meanwhile) is not led, nor is one another node's WAL holds acknowledged records
        of (dirty), unless that WAL is an object WAL (`recovering`: the caller recovers
        them from it) or in `unclean` (unclean.leader.election.enable: those records are
        given up, and logged).
        """
        wanted = {r.stream_id: r.leader_epoch for r in records}
        if not wanted:
            return ClaimOutcome({}, {})
        outcome = await self._metadata.claim_leadership(wanted, self._node_id, unclean)
        for stream_id, stored in outcome.moved.items():
            log.warning(
                "stream %d: not claimed, its epoch moved to %d since it was read or its"
                " leader's lease is live",
                stream_id,
                stored,
            )
        for stream_id, node in outcome.dirty.items():
            log.warning(
                "stream %d: not claimed, node %d holds acknowledged records of it in no"
                " object; it stays offline until that node returns on its WAL",
                stream_id,
                node,
            )
        for stream_id, (node, kept) in outcome.unclean.items():
            log.warning(
                "stream %d: unclean leader election: records node %d acknowledged past"
                " offset %d and never uploaded are given up",
                stream_id,
                node,
                kept,
            )
        self._epochs.update(outcome.claimed)
        self.released.difference_update(outcome.claimed)
        self.generation += 1
        return outcome

    def confirm(self, stream_id: int) -> asyncio.Future[None]:
        """Resolved once the stored epoch of `stream_id` was read after this call and is
        still this broker's; NotLeader (the partition released) when another broker
        claimed it. With an object WAL another broker may claim a dirty partition and
        replay the WAL: an entry whose PUT finished before that claim is in its listing,
        and one acknowledged only after this read is never acknowledged once it moved
        (RFC 0004 §5). The streams asked for in one turn share one read."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._confirming.setdefault(stream_id, []).append(waiter)
        if self._confirmer is None or self._confirmer.done():
            self._confirmer = asyncio.create_task(self._confirm_all(), name="epoch-confirm")
        return waiter

    async def _confirm_all(self) -> None:
        while self._confirming:
            batch, self._confirming = self._confirming, {}
            try:
                stored = await self._metadata.leader_epochs(sorted(batch))
            except Exception as exc:  # noqa: BLE001 - not acknowledged; the producer retries
                error = KafkaError(
                    ErrorCode.kafka_storage_error, f"the leader epoch could not be read: {exc}"
                )
                for waiters in batch.values():
                    _fail(waiters, error)
                continue
            for stream_id, waiters in batch.items():
                epoch = self._epochs.get(stream_id)
                if epoch is not None and stored.get(stream_id) == epoch:
                    for waiter in waiters:
                        if not waiter.done():
                            waiter.set_result(None)
                    continue
                if (
                    epoch is not None
                    and stream_id in stored
                    and is_fenced(stream_id, epoch, stored[stream_id])
                ):
                    log.warning(
                        "stream %d fenced: leader epoch %d is behind the stored %d; releasing it",
                        stream_id,
                        epoch,
                        stored[stream_id],
                    )
                    self.release(stream_id)
                _fail(waiters, NotLeader(f"stream {stream_id} is not led here any more"))

    def check_commit(self, outcome: CommitOutcome) -> list[int]:
        """Apply the epoch rule to an object commit's outcome; release (and return) every
        partition found fenced."""
        fenced = [
            stream_id
            for stream_id, stored in outcome.epoch_mismatch.items()
            # (one released while the commit was out, by a dirty mark that found another
            # epoch, is not led any more: nothing to release)
            if stream_id in self._epochs and is_fenced(stream_id, self._epochs[stream_id], stored)
        ]
        for stream_id in fenced:
            log.warning(
                "stream %d fenced: leader epoch %d is behind the stored %d; releasing it",
                stream_id,
                self._epochs[stream_id],
                outcome.epoch_mismatch[stream_id],
            )
            self.release(stream_id)
        for stream_id in outcome.deleted:
            self.forget(stream_id)
        return fenced

    def release(self, stream_id: int) -> None:
        """Stop leading a partition (fenced, or moved away by the assignment)."""
        if self._epochs.pop(stream_id, None) is not None:
            self.released.add(stream_id)
            self.generation += 1
            self._on_release(stream_id)

    def forget(self, stream_id: int) -> None:
        """A deleted partition: nothing to lead, nothing to release."""
        self._epochs.pop(stream_id, None)
        self.released.discard(stream_id)
        self.generation += 1


def _fail(waiters: list[asyncio.Future[None]], error: BaseException) -> None:
    for waiter in waiters:
        if not waiter.done():
            waiter.set_exception(error)
            waiter.exception()  # retrieved: a caller that gave up must not log it
