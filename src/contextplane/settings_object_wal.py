"""The rows of the settings table for the object WAL (`settings_table.SETTINGS` ends with
them): the write-ahead log in an object store, one PUT per group commit
(storage/object_wal.py, RFC 0004 §4). Kafka has no such settings; the names follow the
broker's `wal.*` family."""

from __future__ import annotations

from typing import Any

OBJECT_WAL_SETTINGS: tuple[dict[str, Any], ...] = (
    dict(
        name="wal.url",
        attr="wal_url",
        unit="",
        meaning="where the write-ahead log lives: empty for segment files under `log.dirs`/wal"
        " (the fast default: an fdatasync a group commit, but a dead broker's un-uploaded tail"
        " waits for that broker's disk), or an object store URL (`s3://bucket/wal?endpoint="
        "...`, `file://`) where each group commit is one PUT before the acknowledgement"
        " (slower: a PUT's latency; the tail lives in the store, so when a broker dies another"
        " takes over its partitions at once, replaying it); a clean stop that uploads"
        " everything within `shutdown.timeout.ms` leaves only one empty marker object there"
        " (otherwise the un-uploaded tail stays for the next start); switch only after a"
        " clean stop",
        default_text="empty (local files)",
    ),
    dict(
        name="wal.object.max.in.flight",
        attr="wal_object_max_in_flight",
        unit="",
        meaning="object WAL: PUTs in flight at once (appends gather for the next meanwhile)",
        low=1,
        high=64,
    ),
    dict(
        name="wal.object.max.bytes",
        attr="wal_object_max_bytes",
        unit="bytes",
        meaning="object WAL: the most one PUT holds (a single larger batch goes alone)",
        low=1,
    ),
)
