"""Fetch, for the partitions this broker serves as an in-zone read replica (RFC 0004 §7,
KIP-392): a consumer of this broker's zone, sent here by the leader's
PreferredReadReplica, reads uploaded data through the mirror of the partition's object
index (storage/read_replica.py).

Served only to the consumer the leader would send here (replica_selector.py: its zone is
this broker's, and the stream's rendezvous choice among the live brokers of this zone is
this broker); any other keeps NOT_LEADER_OR_FOLLOWER with the current leader, as today,
so a consumer whose zone or choice changed goes back to the leader. The high watermark
answered is the uploaded end as last read; an offset past it is waited for (empty
answers, the long poll waking at each refresh) while the uploaded end moves, and is
OFFSET_OUT_OF_RANGE once it stops moving, which sends the consumer to the leader (as a
Kafka follower answers an offset past its log end). The last stable offset is the
mirror's (the stored transaction state): a read_committed consumer reads below it, with
the stored aborted transactions its batches may hold, and waits at it (empty answers)
until an upload carries the transaction's marker, as at a Kafka follower; one past it
(it read further at the leader) is treated as one past the end.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from contextplane.broker.context import RequestContext
from contextplane.broker.handlers.fetch_aborted import stored_aborted_entries
from contextplane.broker.replica_selector import is_chosen
from contextplane.errors import KafkaError
from contextplane.protocol.error_codes import ErrorCode
from contextplane.protocol.fetch_response import records_size
from contextplane.storage.read_replica import Mirror, ReadReplicas

log = logging.getLogger(__name__)


@dataclass(slots=True)
class ReplicaTarget:
    """One partition of a Fetch that this broker may serve as a read replica."""

    entry: dict[str, Any]  # the response's partition entry
    topic: str
    wanted: Any  # the request's partition entry
    mirror: Mirror | None = None  # set once this broker serves it


def _replicas(ctx: RequestContext) -> ReadReplicas | None:
    return ctx.cluster.replicas


async def resolve(ctx: RequestContext, targets: list[ReplicaTarget]) -> None:
    """Serve those of `targets` this broker is the chosen replica of (their error cleared);
    the others keep NOT_LEADER_OR_FOLLOWER, or get the error of their mirror's load."""
    replicas = _replicas(ctx)
    if replicas is None:
        return
    for target in targets:
        entry, wanted = target.entry, target.wanted
        if not is_chosen(ctx, target.topic, wanted.partition):
            continue
        try:
            mirror = await replicas.mirror(target.topic, wanted.partition)
        except KafkaError as exc:
            entry["error_code"] = exc.code
            continue
        # The leader's epoch as this broker last read it: a client ahead of it is told to
        # retry (this broker has not seen that leader yet), behind it to refresh.
        known = ctx.log.led_elsewhere.get((target.topic, wanted.partition))
        asked = getattr(wanted, "current_leader_epoch", -1)
        if known is not None and asked >= 0 and asked != known[1]:
            behind = asked < known[1]
            entry["error_code"] = (
                ErrorCode.fenced_leader_epoch if behind else ErrorCode.unknown_leader_epoch
            )
            continue
        entry["error_code"] = ErrorCode.none
        target.mirror = mirror


async def read(
    ctx: RequestContext, targets: list[ReplicaTarget], budget: int, total: int, committed: bool
) -> int:
    """Read every served partition within `budget` bytes for the response, `total` of
    them taken already (KIP-74: only the first batch of the response may exceed the
    bounds), below the last stable offset if `committed` (read_committed); returns the
    bytes read."""
    replicas = _replicas(ctx)
    read_bytes = 0
    for target in targets:
        if target.mirror is None or replicas is None:
            continue
        entry, wanted = target.entry, target.wanted
        entry["records"] = b""
        try:
            mirror = target.mirror = await replicas.mirror(target.topic, wanted.partition)
            chunks: Any = []
            if replicas.check_offset(mirror, wanted.fetch_offset, committed):
                limit = max(min(wanted.partition_max_bytes, budget - total - read_bytes), 0)
                first = total + read_bytes == 0
                chunks = await replicas.read(mirror, wanted.fetch_offset, limit, first, committed)
        except KafkaError as exc:
            # -1 watermarks, as Kafka answers with an error: librdkafka goes back to the
            # leader on OFFSET_OUT_OF_RANGE from a replica when its offset is past them.
            entry.update(error_code=exc.code, high_watermark=-1, log_start_offset=-1)
            continue
        except OSError as exc:  # an object store outage fails this partition only
            log.warning("replica fetch %s-%d: %s", target.topic, wanted.partition, exc)
            entry.update(error_code=ErrorCode.kafka_storage_error, high_watermark=-1)
            continue
        read_bytes += records_size(chunks)
        entry.update(
            records=chunks,
            high_watermark=mirror.end_offset,
            last_stable_offset=mirror.stable_offset,
            log_start_offset=mirror.log_start_offset,
        )
        if committed:
            entry["aborted_transactions"] = await stored_aborted_entries(
                ctx.log.metadata,
                mirror.stream_id,
                mirror.aborted,
                mirror.stored_before,
                wanted.fetch_offset,
                chunks,
            )
    return read_bytes


def waiters(ctx: RequestContext, targets: list[ReplicaTarget]) -> list[asyncio.Future[Any]]:
    """For a long poll: one wake-up per served partition, when its next refresh is due."""
    replicas = _replicas(ctx)
    if replicas is None:
        return []
    return [
        asyncio.ensure_future(asyncio.sleep(replicas.next_refresh_s(t.mirror)))
        for t in targets
        if t.mirror is not None
    ]


def served(targets: list[ReplicaTarget]) -> list[tuple[dict[str, Any], Any, Any]]:
    """The served partitions as the handler's (entry, partition, wanted) triples: a mirror
    has the `topic` and `partition` that masking, read receipts and counts use."""
    return [(t.entry, t.mirror, t.wanted) for t in targets if t.mirror is not None]
