"""The rows of the settings table for object compaction (`settings_table.SETTINGS` ends
with them): rewriting small multi-partition uploads into larger merged and stream objects
(storage/object_compactor.py, compaction_plan.py). Kafka has no such settings; the names
follow the broker's `object.*` family, the defaults AutoMQ's where it has one (limits.py)."""

from __future__ import annotations

from typing import Any

from contextplane.limits import INT_MAX

_BYTES_MAX = 2**40

COMPACTION_SETTINGS: tuple[dict[str, Any], ...] = (
    dict(
        name="object.compaction.enable",
        attr="object_compaction_enable",
        unit="",
        meaning="run object compaction, which rewrites uploads older than "
        "`object.compaction.min.age.ms` into larger merged and per-partition objects "
        "(fewer, larger ranges to read) and rewrites objects mostly dead",
    ),
    dict(
        name="object.compaction.interval.ms",
        attr="object_compaction_interval_ms",
        unit="ms",
        meaning="how often object compaction plans a pass",
        low=1,
        high=INT_MAX,
    ),
    dict(
        name="object.compaction.min.age.ms",
        attr="object_compaction_min_age_ms",
        unit="ms",
        meaning="an upload is compacted only once it is at least this old",
        low=0,
        high=INT_MAX,
    ),
    dict(
        name="object.compaction.max.objects",
        attr="object_compaction_max_objects",
        unit="",
        meaning="at most this many objects, oldest first, are rewritten per pass",
        low=1,
        high=100_000,
    ),
    dict(
        name="object.compaction.stream.split.bytes",
        attr="object_compaction_stream_split_bytes",
        unit="bytes",
        meaning="a partition with at least this much data in a pass gets objects of its own; "
        "smaller partitions' data is merged into multi-partition objects",
        low=1,
        high=_BYTES_MAX,
    ),
    dict(
        name="object.compaction.stream.object.bytes",
        attr="object_compaction_stream_object_bytes",
        unit="bytes",
        meaning="the largest one-partition object compaction writes (and at most a quarter "
        "of `memory.budget.bytes`' in-flight share)",
        low=1024 * 1024,
        high=_BYTES_MAX,
    ),
    dict(
        name="object.compaction.merged.bytes",
        attr="object_compaction_merged_bytes",
        unit="bytes",
        meaning="the largest multi-partition object compaction writes (and at most a "
        "quarter of `memory.budget.bytes`' in-flight share)",
        low=1024 * 1024,
        high=_BYTES_MAX,
    ),
    dict(
        name="object.compaction.live.ratio",
        attr="object_compaction_live_ratio",
        unit="",
        meaning="an object whose referenced bytes are below this share of its size has its "
        "live data rewritten, so one long-retained partition does not keep others' dead "
        "bytes stored",
        low=0,
        high=1,
    ),
    dict(
        name="object.compaction.read.bytes.per.second",
        attr="object_compaction_read_bytes_per_second",
        unit="bytes/s",
        meaning="object compaction's reads from the object store are paced to this rate",
        low=1,
        high=_BYTES_MAX,
    ),
)
