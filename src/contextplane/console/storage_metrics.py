"""The storage engine's work for /metrics: uploads, cache hits, object compaction and the
log cleaner, read at scrape time from the counters each part keeps (plain integers: the
storage path pays an addition, never a metric object's lock)."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.core import CounterMetricFamily, Metric

from contextplane.storage.engine import StorageEngine


def storage_counts(engine: StorageEngine) -> dict[str, float]:
    uploader, blocks, reader = engine.uploader, engine.blocks, engine.reader
    compactor, cleaner = engine.compactor.stats, engine.cleaner.stats
    return {
        "uploads": uploader.objects_committed,
        "upload_bytes": uploader.bytes_committed,
        "upload_failures": uploader.failed_attempts,
        "reads_log_cache": reader.log_cache_reads,
        "reads_objects": reader.object_reads,
        "block_hits": blocks.hits,
        "block_joined": blocks.joined,
        "block_misses": blocks.misses,
        "compaction_passes": compactor.passes,
        "compaction_tasks": compactor.tasks,
        "compaction_refused": compactor.refused,
        "compaction_read": compactor.bytes_read,
        "compaction_written": compactor.bytes_written,
        "cleaner_passes": cleaner.passes,
        "cleaner_swaps": cleaner.swaps,
        "cleaner_read": cleaner.bytes_read,
        "cleaner_written": cleaner.bytes_written,
        "cleaner_seconds": cleaner.seconds,
    }


# Single-value counters: (name without `_total`, help, key of storage_counts).
_COUNTERS = (
    ("contextplane_uploads", "Objects uploaded and committed", "uploads"),
    ("contextplane_upload_bytes", "Bytes of the objects committed", "upload_bytes"),
    (
        "contextplane_upload_failures",
        "Upload attempts that failed (the WAL keeps the records; retried with a back-off)",
        "upload_failures",
    ),
    ("contextplane_object_compaction_passes", "Object compaction passes", "compaction_passes"),
    ("contextplane_object_compaction_tasks", "Compacted objects written", "compaction_tasks"),
    (
        "contextplane_object_compaction_refused",
        "Compacted objects none of whose streams could be swapped in",
        "compaction_refused",
    ),
    (
        "contextplane_log_cleaner_passes",
        "Log cleaner passes over compacted topics",
        "cleaner_passes",
    ),
    ("contextplane_log_cleaner_swaps", "Cleaned partitions swapped in", "cleaner_swaps"),
    ("contextplane_log_cleaner_seconds", "Time the log cleaner's passes took", "cleaner_seconds"),
)
# Labelled counters: (name, help, label, ((label value, key), ...)).
_LABELLED = (
    (
        "contextplane_partition_reads",
        "Partition reads of fetches: answered by the log cache, or planned over objects",
        "source",
        (("log_cache", "reads_log_cache"), ("objects", "reads_objects")),
    ),
    (
        "contextplane_block_cache_reads",
        "Object ranges read: found in the block cache (hit), joined to a GET in flight, or "
        "read by a GET of their own (miss)",
        "result",
        (("hit", "block_hits"), ("joined", "block_joined"), ("miss", "block_misses")),
    ),
    (
        "contextplane_object_compaction_bytes",
        "Bytes object compaction read and wrote",
        "direction",
        (("read", "compaction_read"), ("written", "compaction_written")),
    ),
    (
        "contextplane_log_cleaner_bytes",
        "Bytes the log cleaner read (dirty sections) and wrote",
        "direction",
        (("read", "cleaner_read"), ("written", "cleaner_written")),
    ),
)


def storage_families(counts: dict[str, float]) -> Iterable[Metric]:
    if not counts:
        return
    for name, text, key in _COUNTERS:
        yield CounterMetricFamily(name, text, value=counts[key])
    for name, text, label, series in _LABELLED:
        family = CounterMetricFamily(name, text, labels=[label])
        for value, key in series:
            family.add_metric([value], counts[key])
        yield family
