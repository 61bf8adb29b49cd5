"""The rows of the settings table for catch-up reads from objects (RFC 0003, slices
1-3: coalesced ranged GETs, parts read in parallel, read-ahead, the object index kept
while used); `settings_table.SETTINGS` lists them after the uploader's."""

from __future__ import annotations

from contextplane.setting import Setting

OBJECT_READ_SETTINGS: tuple[Setting, ...] = (
    Setting(
        "object.read.coalesce.bytes",
        "object_read_coalesce_bytes",
        "bytes",
        "a catch-up fetch reads ranges of one object with gaps below this in one GET",
        low=0,
        high=64 * 1024 * 1024,
    ),
    Setting(
        "object.read.span.bytes",
        "object_read_span_bytes",
        "bytes",
        "... of at most this many bytes (a single larger range is read alone)",
        low=1,
        high=1024 * 1024 * 1024,
    ),
    Setting(
        "object.read.part.bytes",
        "object_read_part_bytes",
        "bytes",
        "a span larger than this is read as parallel GETs of at most this, split at ranges "
        "(and a span is widened to the rest of its object up to this)",
        low=1,
        high=1024 * 1024 * 1024,
    ),
    Setting(
        "object.read.concurrency",
        "object_read_concurrency",
        "",
        "object GETs in flight at once for fetches, broker-wide",
        low=1,
        high=1024,
    ),
    Setting(
        "object.read.ahead.enable",
        "object_read_ahead_enable",
        "",
        "read ahead of catch-up consumers, as far as each stream's rate reads in 2 GET p99s",
    ),
    Setting(
        "object.read.ahead.min.bytes",
        "object_read_ahead_min_bytes",
        "bytes",
        "a stream's read-ahead window is at least this ...",
        low=0,
        high=1024 * 1024 * 1024,
    ),
    Setting(
        "object.read.ahead.max.bytes",
        "object_read_ahead_max_bytes",
        "bytes",
        "... and at most this (the larger of the two if below the minimum)",
        low=0,
        high=1024 * 1024 * 1024,
    ),
    Setting(
        "object.index.idle.ms",
        "object_index_idle_ms",
        "ms",
        "a partition's object index, loaded on its first object read, is dropped from memory"
        " after this long unused",
        low=1,
    ),
    Setting(
        "object.read.fetch.concurrency",
        "object_read_fetch_concurrency",
        "",
        "fetches that read from objects planned and assembled at once (tail fetches never wait)",
        low=1,
        high=1024,
    ),
    Setting(
        "response.send.threads",
        "response_send_threads",
        "",
        "threads that write responses larger than 1 MiB (catch-up fetches) to plaintext"
        " connections off the event loop; 0: the loop writes every response",
        low=0,
        high=64,
    ),
)
