"""The rows of the settings table for deleting objects and cleaning compacted topics
(`settings_table.SETTINGS` ends with them): the grace period of unreferenced objects, the
orphan sweep, and the log cleaner. Each is `Setting`'s fields; Kafka's names and
defaults where Kafka has the setting."""

from __future__ import annotations

from typing import Any

from contextplane.limits import INT_MAX, LONG_MAX

CLEANER_SETTINGS: tuple[dict[str, Any], ...] = (
    dict(
        name="log.segment.delete.delay.ms",
        attr="log_segment_delete_delay_ms",
        unit="ms",
        meaning="an object no range references any more (retention, DeleteRecords, topic "
        "deletion, the cleaner) is deleted this long after, so fetches already reading it "
        "finish; durable across restarts (topic `file.delete.delay.ms` overrides)",
        low=0,
        high=INT_MAX,
    ),
    dict(
        name="object.store.orphan.min.age.ms",
        attr="object_store_orphan_min_age_ms",
        unit="ms",
        meaning="the orphan sweep deletes an object no metadata references (a crash between "
        "its PUT and its commit) only once the store dates it at least this long ago; "
        "uploads in flight in this broker are never swept, whatever their age",
        low=0,
        high=INT_MAX,
    ),
    dict(
        name="object.store.orphan.sweep.interval.ms",
        attr="object_store_orphan_sweep_interval_ms",
        unit="ms",
        meaning="how often the orphan sweep lists the object store (it also runs at start)",
        low=1,
        high=INT_MAX,
    ),
    dict(
        name="log.cleaner.enable",
        attr="log_cleaner_enable",
        unit="",
        meaning="run the log cleaner, which compacts topics whose `cleanup.policy` lists `compact`",
    ),
    dict(
        name="log.cleaner.backoff.ms",
        attr="log_cleaner_backoff_ms",
        unit="ms",
        meaning="how long the log cleaner sleeps when no partition is cleanable",
        low=1,
        high=INT_MAX,
    ),
    dict(
        name="log.cleaner.dedupe.buffer.size",
        attr="log_cleaner_dedupe_buffer_size",
        unit="bytes",
        meaning="memory of the cleaner's key -> latest offset map; a dirty section with more "
        "keys than it holds is cleaned in several passes, as in Kafka",
        low=1024 * 1024,
        high=2**40,
    ),
    dict(
        name="log.cleaner.io.max.bytes.per.second",
        attr="log_cleaner_io_max_bytes_per_second",
        unit="bytes/s",
        meaning="the log cleaner's object reads and writes together are paced to this rate "
        "(Kafka's Throttler); a decimal number as in Kafka (`1e7`); the default, Double.MaxValue, "
        "never waits",
        default_text="1.7976931348623157E308 (no limit)",
        low=1,
    ),
    dict(
        name="log.cleaner.min.cleanable.ratio",
        attr="log_cleaner_min_cleanable_ratio",
        unit="",
        meaning="the default of topic `min.cleanable.dirty.ratio`: the dirty share of a "
        "compacted partition's log at which the cleaner cleans it",
        low=0,
        high=1,
    ),
    dict(
        name="log.cleaner.delete.retention.ms",
        attr="log_cleaner_delete_retention_ms",
        unit="ms",
        meaning="the default of topic `delete.retention.ms`: how long a tombstone stays "
        "once a cleaning has reached it (it goes at a later cleaning)",
        low=0,
        high=LONG_MAX,
    ),
    dict(
        name="log.cleaner.min.compaction.lag.ms",
        attr="log_cleaner_min_compaction_lag_ms",
        unit="ms",
        meaning="the default of topic `min.compaction.lag.ms`: a record stays uncompacted at "
        "least this long",
        low=0,
        high=LONG_MAX,
    ),
    dict(
        name="log.cleaner.max.compaction.lag.ms",
        attr="log_cleaner_max_compaction_lag_ms",
        unit="ms",
        meaning="the default of topic `max.compaction.lag.ms`: a record older than this is "
        "cleaned whatever the dirty ratio",
        low=1,
        high=LONG_MAX,
    ),
    dict(
        name="log.cleanup.policy",
        attr="log_cleanup_policy",
        unit="",
        meaning="the default of topic `cleanup.policy`: a list of `delete` (retention) and "
        "`compact` (the log cleaner); `__consumer_offsets` is always created `compact`",
    ),
)
