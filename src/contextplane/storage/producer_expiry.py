"""Producer state expiry (Kafka's producer.id.expiration.ms): each partition forgets the
idempotent producers it has not heard from for that long, so their state does not grow
without bound. A producer with an open transaction is kept whatever its age; the next
object commit's snapshot leaves the expired ones out."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

from contextplane.clock import Clock
from contextplane.storage.partition import PartitionLog

log = logging.getLogger(__name__)


def expire_producers(partitions: Iterable[PartitionLog], now_ms: int, expiration_ms: int) -> int:
    """Forget, in every partition, the producers idle longer than `expiration_ms`."""
    expired = 0
    for partition in partitions:
        expired += partition.producers.expire(
            now_ms - expiration_ms,
            partition.high_watermark,
            set(partition.transactions.open),
        )
    return expired


async def run_producer_expiry(
    partitions: Callable[[], Iterable[PartitionLog]],
    clock: Clock,
    expiration_ms: int,
    interval_ms: int,
) -> None:
    """One expiry pass every `producer.id.expiration.check.interval.ms`."""
    while True:
        await asyncio.sleep(interval_ms / 1000)
        try:
            expired = expire_producers(partitions(), clock.wall_ms(), expiration_ms)
        except Exception:  # noqa: BLE001 - the next pass retries
            log.exception("producer state expiry failed")
            continue
        if expired:
            log.info("forgot %d producers idle longer than %d ms", expired, expiration_ms)
