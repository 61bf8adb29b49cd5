"""The fetch handler's masking step: the partitions of a response whose topic a masking
policy covers for the fetching principal get their record chunks replaced by masked
copies (masking.py), built on a worker thread; every other partition keeps the chunks
the storage engine read, untouched (the zero-copy path).

Costs nothing when no policy exists beyond a dictionary lookup and a comparison of the
policy topic's high watermark with the fold's position.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from contextplane import limits
from contextplane.broker.configs import topic_config
from contextplane.broker.context import RequestContext
from contextplane.broker.masking import FieldMasker, Masked, mask_chunks, no_references
from contextplane.broker.read_receipts import returned_range_of
from contextplane.java_numbers import stored_int
from contextplane.logsafe import escape
from contextplane.protocol.decompress import DecompressedTooLarge, DecompressionError
from contextplane.protocol.error_codes import ErrorCode
from contextplane.security.masking_policy import MaskingPolicy
from contextplane.storage.partition import PartitionLog

log = logging.getLogger(__name__)

# Record bytes (keys and values, decompressed) one fetch masks: past it the partition's
# later batches are left for the consumer's next fetch (its first batch is always masked).
FETCH_DECOMPRESSED_BYTES_MAX = 64 * 1024 * 1024

_pool: ThreadPoolExecutor | None = None

Target = tuple[dict[str, Any], PartitionLog | None, Any]


def _masking_pool() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(
            max_workers=limits.RECORD_VALIDATION_THREADS, thread_name_prefix="fetch-masking"
        )
    return _pool


async def mask_fetch(ctx: RequestContext, targets: list[Target]) -> None:
    """Mask, in place, the records of every partition a policy covers for this principal."""
    policies = ctx.services.masking
    storage = ctx.log
    if not any(partition is not None and entry["records"] for entry, partition, _ in targets):
        return  # no records, nothing to mask (an idle long poll asks no leader)
    ticket = policies.ticket()
    known = ctx.topics.topics()
    exists = policies.topic in known
    if policies.behind(storage, exists):
        await policies.catch_up(storage, ticket, exists)
    if policies.incomplete:
        # Fail closed: the policies could not be read, so no partition's records go out.
        for entry, partition, _ in targets:
            if partition is not None and entry["records"]:
                entry.update(records=b"", error_code=ErrorCode.kafka_storage_error)
        return
    if not policies.any:
        return
    principal = str(ctx.principal)
    jobs = []
    # Never masked: the two topics every broker folds, which other brokers read as Kafka
    # clients (topic_follower.py); a masked policy would read there as a tombstone.
    folded = (policies.topic, ctx.services.schemas.topic)
    for entry, partition, wanted in targets:
        if partition is None or not entry["records"] or partition.topic in folded:
            continue
        covering = policies.covering(principal, partition.topic)
        if covering:
            # A topic deleted meanwhile is still masked, within the broker's own bound.
            topic = known.get(partition.topic)
            configs = topic.configs if topic is not None else {}
            batch_max = stored_int(topic_config(configs, "max.message.bytes", ctx.settings))
            jobs.append((entry, partition.topic, covering, batch_max, wanted.fetch_offset))
    if not jobs:
        return
    catalog = ctx.services.schemas
    key = ctx.settings.masking_hmac_key.encode()
    ratio = ctx.settings.message_max_decompression_ratio
    async with catalog.current(storage, catalog.topic in known):
        registry = catalog.registry
        schemas = registry.schemas if registry is not None else {}
        referenced = registry.referenced_schema if registry is not None else no_references
        loop = asyncio.get_running_loop()
        for entry, topic, covering, batch_max, fetch_offset in jobs:
            masker = FieldMasker(covering, schemas.get, key, referenced)
            try:
                masked: Masked = await loop.run_in_executor(
                    _masking_pool(),
                    mask_chunks,
                    entry["records"],
                    masker,
                    batch_max * ratio,
                    FETCH_DECOMPRESSED_BYTES_MAX,
                )
            except (ValueError, IndexError, DecompressionError, DecompressedTooLarge) as exc:
                # Fail closed: records that cannot be masked are not sent.
                log.warning("masking %s for %s failed: %s", escape(topic), escape(principal), exc)
                entry.update(records=b"", error_code=ErrorCode.corrupt_message)
                continue
            entry["records"] = masked.chunks
            for action, count in masked.counts.items():
                ctx.services.stats.masked(topic, action, count)
            if masked.counts:
                _audit(ctx, topic, entry["partition_index"], fetch_offset, covering, masked)


def _audit(
    ctx: RequestContext,
    topic: str,
    partition: int,
    fetch_offset: int,
    covering: list[MaskingPolicy],
    masked: Masked,
) -> None:
    """One audit record per partition of a fetch whose records were masked: who, which
    offsets, by which policies, how many records per action."""
    returned = returned_range_of(fetch_offset, masked.chunks)
    first, last = returned if returned is not None else (fetch_offset, fetch_offset - 1)
    ctx.audit.record(
        ctx,
        "Fetch",
        "topic",
        topic,
        details={
            "partition": partition,
            "first_offset": first,
            "last_offset": last,
            "masked": ",".join(f"{a}={n}" for a, n in sorted(masked.counts.items())),
            "policies": ",".join(sorted(p.name for p in covering)),
        },
    )
