"""ListOffsets (earliest, latest, max timestamp, by timestamp) and DeleteRecords."""

from __future__ import annotations

import time
from typing import Any

from conformance import wire
from conformance.scenarios import Ctx, scenario
from conformance.wire import Rec, err

T0 = 1_700_000_000_000
EARLIEST, LATEST, MAX_TIMESTAMP = -2, -1, -3


def _listed(part: Any) -> dict[str, Any]:
    return {
        "error": err(part.error_code),
        "offset": part.offset,
        "timestamp": part.timestamp if isinstance(part.timestamp, int) else _ts(part.timestamp),
    }


def _ts(value: Any) -> int:
    return -1 if value is None else int(value.timestamp() * 1000)


@scenario()
def list_offsets_by_time(ctx: Ctx) -> None:
    """Earliest, latest, max timestamp and lookups by timestamp across batches whose
    records are out of order in time."""
    client = ctx.raw()
    ctx.record("create", err(wire.create_topic(client, "lo-time", 1).error_code))
    ctx.check(wire.wait_for_topic(client, "lo-time", 1), "topic ready")
    ctx.record("empty.earliest", _listed(wire.list_offsets(client, "lo-time", EARLIEST)))
    ctx.record("empty.latest", _listed(wire.list_offsets(client, "lo-time", LATEST)))
    ctx.record("empty.by_time", _listed(wire.list_offsets(client, "lo-time", T0)))
    batches = [
        [T0, T0 + 1000, T0 + 2000],  # offsets 0-2
        [T0 + 5000, T0 + 3000],  # offsets 3-4: out of order inside the batch
        [T0 + 4000],  # offset 5: earlier than the previous batch's max
    ]
    for stamps in batches:
        recs = [Rec(f"t{ts - T0}".encode(), timestamp=ts) for ts in stamps]
        part = wire.produce(client, "lo-time", wire.encode_batch(recs))
        ctx.record(f"produce[{stamps[0] - T0}]", err(part.error_code))
    ctx.record("earliest", _listed(wire.list_offsets(client, "lo-time", EARLIEST)))
    ctx.record("latest", _listed(wire.list_offsets(client, "lo-time", LATEST)))
    ctx.record("max_timestamp", _listed(wire.list_offsets(client, "lo-time", MAX_TIMESTAMP)))
    for delta in (-1, 0, 1, 500, 1000, 2500, 3000, 3500, 4000, 4500, 5000, 5001, 10**9):
        part = wire.list_offsets(client, "lo-time", T0 + delta)
        ctx.record(f"by_time[{delta}]", _listed(part))
    ctx.record(
        "v1.by_time",
        _listed(wire.list_offsets(client, "lo-time", T0 + 1500, version=1)),
    )
    ctx.record("unknown_partition", err(wire.list_offsets(client, "lo-time", LATEST, 4).error_code))
    ctx.record("unknown_topic", err(wire.list_offsets(client, "lo-missing", LATEST).error_code))
    ctx.record(
        "read_committed.latest",
        _listed(wire.list_offsets(client, "lo-time", LATEST, isolation_level=1)),
    )


@scenario()
def delete_records(ctx: Ctx) -> None:
    """DeleteRecords moves the log start: low watermarks, fetch below it, earliest after,
    beyond the high watermark, -1 (up to the high watermark), unknown topic/partition."""
    client = ctx.raw()
    ctx.record("create", err(wire.create_topic(client, "dr-topic", 2).error_code))
    ctx.check(wire.wait_for_topic(client, "dr-topic", 2), "topic ready")
    for i in range(4):
        wire.produce(client, "dr-topic", wire.encode_batch([f"r{i}a".encode(), f"r{i}b".encode()]))
    part = wire.delete_records(client, "dr-topic", 3)
    ctx.record("delete_to_3", {"error": err(part.error_code), "low_watermark": part.low_watermark})
    fetched = wire.fetch_one(client, "dr-topic", 1)
    ctx.record(
        "fetch_below", {"error": err(fetched.error_code), "log_start": fetched.log_start_offset}
    )
    fetched = wire.fetch_one(client, "dr-topic", 3)
    batches = wire.decode_batches(fetched.records)
    ctx.record(
        "fetch_at_start",
        {
            "error": err(fetched.error_code),
            "log_start": fetched.log_start_offset,
            "first_batch_base": batches[0].base_offset if batches else None,
            "first_offset_returned": min(
                (r["offset"] for b in batches for r in b.records), default=None
            ),
        },
    )
    ctx.record("earliest_after", _listed(wire.list_offsets(client, "dr-topic", EARLIEST)))
    part = wire.delete_records(client, "dr-topic", 2)
    ctx.record(
        "delete_backwards", {"error": err(part.error_code), "low_watermark": part.low_watermark}
    )
    part = wire.delete_records(client, "dr-topic", 100)
    ctx.record(
        "delete_beyond_hw", {"error": err(part.error_code), "low_watermark": part.low_watermark}
    )
    part = wire.delete_records(client, "dr-topic", -1)
    ctx.record("delete_to_hw", {"error": err(part.error_code), "low_watermark": part.low_watermark})
    ctx.record("earliest_after_all", _listed(wire.list_offsets(client, "dr-topic", EARLIEST)))
    ctx.record("latest_after_all", _listed(wire.list_offsets(client, "dr-topic", LATEST)))
    part = wire.produce(client, "dr-topic", wire.encode_batch([b"after"]))
    ctx.record(
        "produce_after",
        {
            "error": err(part.error_code),
            "base_offset": part.base_offset,
            "log_start": part.log_start_offset,
        },
    )
    part = wire.delete_records(client, "dr-topic", 0, partition=1)
    ctx.record(
        "delete_0_empty_partition",
        {"error": err(part.error_code), "low_watermark": part.low_watermark},
    )
    part = wire.delete_records(client, "dr-topic", 1, partition=1)
    ctx.record(
        "delete_1_empty_partition",
        {"error": err(part.error_code), "low_watermark": part.low_watermark},
    )
    part = wire.delete_records(client, "dr-topic", 0, partition=5)
    ctx.record("unknown_partition", err(part.error_code))
    part = wire.delete_records(client, "dr-missing", 0)
    ctx.record("unknown_topic", err(part.error_code))


@scenario()
def old_timestamps_are_kept(ctx: Ctx) -> None:
    """Records whose CreateTime is far in the past (1970, as librdkafka's 0059_bsearch
    produces) in a topic with retention.ms=-1 stay readable and findable by time.

    With a finite retention.ms both brokers delete such records at their next retention
    check (Kafka: 30 s after start, then every 5 min, rolling the active segment too), so
    only the unlimited case is deterministic enough to compare."""
    import time

    client = ctx.raw()
    created = wire.create_topic(client, "lo-old", 1, retention_ms="-1")
    ctx.record("create", err(created.error_code))
    ctx.check(wire.wait_for_topic(client, "lo-old", 1), "topic ready")
    for i in range(5):
        recs = [Rec(f"old{i}-{j}".encode(), timestamp=1000 + i * 1000 + j) for j in range(3)]
        ctx.record(
            f"produce[{i}]", err(wire.produce(client, "lo-old", wire.encode_batch(recs)).error_code)
        )
    time.sleep(7.0)  # past contextplane's retention check interval and several uploads
    ctx.record("earliest", _listed(wire.list_offsets(client, "lo-old", EARLIEST)))
    ctx.record("latest", _listed(wire.list_offsets(client, "lo-old", LATEST)))
    fetched = wire.fetch_one(client, "lo-old", 4)
    ctx.record(
        "fetch_4",
        {"error": err(fetched.error_code), "log_start": fetched.log_start_offset},
    )
    ctx.record("by_time[2500]", _listed(wire.list_offsets(client, "lo-old", 2500)))


@scenario()
def special_timestamps_by_version(ctx: Ctx) -> None:
    """ListOffsets v8-v11 with every special timestamp: earliest local (-4, KIP-405),
    latest tiered (-5, KIP-1005, v9+), earliest pending upload (-6, KIP-1023, v11+),
    and v10's timeout (KIP-1075), on a topic with records."""
    client = ctx.raw()
    ctx.record("create", err(wire.create_topic(client, "lo-special", 1).error_code))
    ctx.check(wire.wait_for_topic(client, "lo-special", 1), "topic ready")
    recs = [Rec(f"r{i}".encode(), timestamp=T0 + i) for i in range(5)]
    ctx.record(
        "produce", err(wire.produce(client, "lo-special", wire.encode_batch(recs)).error_code)
    )
    # contextplane answers the tiered timestamps from its uploads: wait (briefly; Kafka
    # without tiered storage answers -1 throughout) until the records are in an object,
    # so that what is compared does not depend on the upload's timing.
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline:
        if wire.list_offsets(client, "lo-special", -6, version=11).offset == len(recs):
            break
        time.sleep(0.1)
    for version in (6, 7, 8, 9, 10, 11):
        for timestamp in (-1, -2, -3, -4, -5, -6, -7, -100):
            part = wire.list_offsets(client, "lo-special", timestamp, version=version)
            ctx.record(f"v{version}.at_{timestamp}", _listed(part))
