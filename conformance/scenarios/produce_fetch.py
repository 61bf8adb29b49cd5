"""Produce and fetch at the protocol level: offsets, timestamps, headers, compression,
acks, size limits and long polls."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

from conformance import wire
from conformance.scenarios import Ctx, scenario
from conformance.wire import Rec, err

T0 = 1_700_000_000_000


def _setup(ctx: Ctx, client: Any, topic: str, partitions: int = 1, **configs: str) -> None:
    created = err(wire.create_topic(client, topic, partitions, **configs).error_code)
    ctx.record("create", created)
    ctx.check(created == "none", f"{topic} created")
    ctx.check(wire.wait_for_topic(client, topic, partitions), f"{topic} has leaders")


def _produced(part: Any, ctx: Ctx, known: tuple[int, ...] = ()) -> dict[str, Any]:
    return {
        "error": err(part.error_code),
        "base_offset": part.base_offset,
        "log_append_time": ctx.clock(part.log_append_time or -1, known=known)
        if isinstance(part.log_append_time, int)
        else _lat(ctx, part.log_append_time),
        "log_start_offset": part.log_start_offset,
        "record_errors": [
            (r.batch_index, bool(r.batch_index_error_message)) for r in part.record_errors
        ],
    }


def _lat(ctx: Ctx, value: Any) -> Any:
    """kio decodes log_append_time as a datetime (None for -1)."""
    if value is None:
        return -1
    return ctx.clock(int(value.timestamp() * 1000))


def _fetched(part: Any, ctx: Ctx, known: tuple[int, ...] = ()) -> dict[str, Any]:
    batches = wire.decode_batches(part.records)
    return {
        "error": err(part.error_code),
        "high_watermark": part.high_watermark,
        "last_stable_offset": part.last_stable_offset,
        "log_start_offset": part.log_start_offset,
        "aborted": None if part.aborted_transactions is None else len(part.aborted_transactions),
        "batches": [
            {
                "base_offset": b.base_offset,
                "last_offset_delta": b.last_offset_delta,
                "codec": b.codec,
                "log_append_time": b.log_append_time,
                "max_timestamp": ctx.clock(b.max_timestamp, known=known),
                "crc_ok": b.crc_ok,
                "leader_epoch_non_negative": b.leader_epoch >= 0,
                "records": [
                    dict(r, timestamp=ctx.clock(r["timestamp"], known=known)) for r in b.records
                ],
            }
            for b in batches
        ],
    }


@scenario()
def offsets_and_ranges(ctx: Ctx) -> None:
    """Three batches get dense offsets; fetches from the start, mid-batch, the end, past
    the end and before the start."""
    client = ctx.raw()
    _setup(ctx, client, "pf-offsets")
    sizes = [1, 5, 2]
    for i, size in enumerate(sizes):
        batch = wire.encode_batch(
            [Rec(f"v{i}-{j}".encode(), key=f"k{j}".encode()) for j in range(size)], timestamp=T0
        )
        ctx.record(f"produce[{i}]", _produced(wire.produce(client, "pf-offsets", batch), ctx))
    ctx.record("fetch_0", _fetched(wire.fetch_one(client, "pf-offsets", 0), ctx, (T0,)))
    mid = wire.fetch_one(client, "pf-offsets", 3)
    ctx.record(
        "fetch_3_batch_bases",
        [b.base_offset for b in wire.decode_batches(mid.records)],
    )
    end = wire.fetch_one(client, "pf-offsets", 8)
    ctx.record("fetch_end", {"error": err(end.error_code), "bytes": len(end.records or b"")})
    past = wire.fetch_one(client, "pf-offsets", 9)
    ctx.record("fetch_past_end", {"error": err(past.error_code), "hw": past.high_watermark})
    before = wire.fetch_one(client, "pf-offsets", -1)
    ctx.record("fetch_negative", {"error": err(before.error_code)})
    unknown = wire.fetch_one(client, "pf-offsets", 0, partition=7)
    ctx.record("fetch_unknown_partition", err(unknown.error_code))
    response = wire.fetch(client, [("pf-no-such-topic", 0, 0)])
    ctx.record(
        "fetch_unknown_topic",
        [err(p.error_code) for t in response.responses for p in t.partitions],
    )


@scenario()
def timestamps(ctx: Ctx) -> None:
    """CreateTime keeps the producer's timestamps (out of order within a batch, far in
    the past)."""
    client = ctx.raw()
    _setup(ctx, client, "pf-ts-create")
    recs = [Rec(b"a", timestamp=T0), Rec(b"b", timestamp=T0 + 500), Rec(b"c", timestamp=T0 + 100)]
    part = wire.produce(client, "pf-ts-create", wire.encode_batch(recs))
    ctx.record("create_time.produce", _produced(part, ctx))
    known = (T0, T0 + 100, T0 + 500)
    ctx.record("create_time.fetch", _fetched(wire.fetch_one(client, "pf-ts-create", 0), ctx, known))
    # A timestamp far from broker time with the default (unlimited) allowed difference.
    old = wire.produce(client, "pf-ts-create", wire.encode_batch([Rec(b"old", timestamp=1)]))
    ctx.record("very_old_timestamp", err(old.error_code))


@scenario()
def log_append_time(ctx: Ctx) -> None:
    """A topic with message.timestamp.type=LogAppendTime: broker time in the produce
    response and in the fetched batch (timestamp type bit, max timestamp)."""
    client = ctx.raw()
    recs = [Rec(b"a", timestamp=T0), Rec(b"b", timestamp=T0 + 500)]
    _setup(ctx, client, "pf-ts-append", message_timestamp_type="LogAppendTime")
    part = wire.produce(client, "pf-ts-append", wire.encode_batch(recs))
    ctx.record("produce", _produced(part, ctx))
    ctx.record("fetch", _fetched(wire.fetch_one(client, "pf-ts-append", 0), ctx))
    configs = wire.describe_configs(client, wire.TOPIC_RESOURCE, "pf-ts-append")
    ctx.record(
        "config",
        [c.value for c in configs.configs if c.name == "message.timestamp.type"],
    )


@scenario()
def headers_keys_nulls(ctx: Ctx) -> None:
    """Headers (repeated names, null values), null keys, null and empty values round-trip."""
    client = ctx.raw()
    _setup(ctx, client, "pf-headers")
    recs = [
        Rec(b"v1", key=b"k1", headers=[("h", b"1"), ("h", b"2"), ("empty", b"")]),
        Rec(None, key=b"tombstone", headers=[("null", None)]),
        Rec(b"", key=None),
        Rec("üñï".encode(), key="ключ".encode(), headers=[("ünï", "välue".encode())]),
    ]
    part = wire.produce(client, "pf-headers", wire.encode_batch(recs, timestamp=T0))
    ctx.record("produce", _produced(part, ctx))
    ctx.record("fetch", _fetched(wire.fetch_one(client, "pf-headers", 0), ctx, (T0,)))


@scenario()
def compression(ctx: Ctx) -> None:
    """Batches compressed with each codec are stored as sent (topic compression.type
    producer) and read back; a topic with compression.type=gzip; an unknown codec."""
    client = ctx.raw()
    _setup(ctx, client, "pf-codecs")
    for codec in ("none", "gzip", "snappy", "lz4", "zstd"):
        recs = [Rec(f"{codec}-{i}".encode() * 20, key=codec.encode()) for i in range(3)]
        part = wire.produce(
            client, "pf-codecs", wire.encode_batch(recs, compression=codec, timestamp=T0)
        )
        ctx.record(f"produce.{codec}", _produced(part, ctx))
    ctx.record("fetch", _fetched(wire.fetch_one(client, "pf-codecs", 0), ctx, (T0,)))
    bad = bytearray(wire.encode_batch([b"x"], timestamp=T0))
    # attributes live after the CRC: set codec 7 and re-encode the CRC so only the codec is bad
    import struct

    import crc32c

    attrs = struct.unpack_from(">h", bad, 21)[0]
    struct.pack_into(">h", bad, 21, attrs | 7)
    struct.pack_into(">I", bad, 17, crc32c.crc32c(bytes(bad[21:])))
    part = wire.produce(client, "pf-codecs", bytes(bad))
    ctx.record("unknown_codec", err(part.error_code))

    ctx.record(
        "gzip_topic.create",
        err(wire.create_topic(client, "pf-gzip-topic", 1, compression_type="gzip").error_code),
    )
    ctx.check(wire.wait_for_topic(client, "pf-gzip-topic", 1), "topic ready")
    part = wire.produce(
        client, "pf-gzip-topic", wire.encode_batch([b"plain-1", b"plain-2"], timestamp=T0)
    )
    ctx.record("gzip_topic.produce", _produced(part, ctx))
    fetched = wire.fetch_one(client, "pf-gzip-topic", 0)
    ctx.record("gzip_topic.codecs", [b.codec for b in wire.decode_batches(fetched.records)])
    ctx.record(
        "gzip_topic.values",
        [r["value"] for b in wire.decode_batches(fetched.records) for r in b.records],
    )


@scenario()
def acks(ctx: Ctx) -> None:
    """acks=0 (no response, data lands), acks=1, acks=-1, and invalid acks values."""
    client = ctx.raw()
    _setup(ctx, client, "pf-acks")
    wire.produce(client, "pf-acks", wire.encode_batch([b"zero"]), acks=0)
    part = wire.produce(client, "pf-acks", wire.encode_batch([b"one"]), acks=1)
    ctx.record("acks_1", _produced(part, ctx))
    part = wire.produce(client, "pf-acks", wire.encode_batch([b"all"]), acks=-1)
    ctx.record("acks_all", _produced(part, ctx))
    for acks in (2, -2, 5):
        part = wire.produce(client, "pf-acks", wire.encode_batch([b"bad"]), acks=acks)
        ctx.record(f"acks_{acks}", err(part.error_code))
    fetched = wire.fetch_one(client, "pf-acks", 0)
    ctx.record(
        "values", [r["value"] for b in wire.decode_batches(fetched.records) for r in b.records]
    )
    # acks=0 to an unknown topic: no response, and the connection stays usable or closes.
    wire.produce(client, "pf-acks-unknown-topic", wire.encode_batch([b"x"]), acks=0)
    try:
        response = wire.metadata(client, ["pf-acks"])
        ctx.record("after_acks0_error.connection", "open")
        ctx.record("after_acks0_error.metadata", err(response.topics[0].error_code))
    except (ConnectionError, OSError):
        ctx.record("after_acks0_error.connection", "closed")


@scenario()
def fetch_max_bytes(ctx: Ctx) -> None:
    """partition_max_bytes and max_bytes: at least one whole batch, then only whole
    batches within the limit; the response limit spans partitions."""
    client = ctx.raw()
    _setup(ctx, client, "pf-maxbytes", 2)
    for partition in (0, 1):
        for i in range(6):
            batch = wire.encode_batch([Rec(bytes([65 + i]) * 1000)], timestamp=T0)
            wire.produce(client, "pf-maxbytes", batch, partition=partition)
    size = len(wire.encode_batch([Rec(b"A" * 1000)], timestamp=T0))
    ctx.record("batch_size", size)

    def bases(**kw: Any) -> list[list[int]]:
        response = wire.fetch(client, [("pf-maxbytes", 0, 0), ("pf-maxbytes", 1, 0)], **kw)
        return [
            [b.base_offset for b in wire.decode_batches(p.records)]
            for t in response.responses
            for p in sorted(t.partitions, key=lambda p: p.partition_index)
        ]

    ctx.record("partition_max_1", bases(partition_max_bytes=1))
    ctx.record("partition_max_2_5_batches", bases(partition_max_bytes=int(size * 2.5)))
    ctx.record("partition_max_exact_3", bases(partition_max_bytes=size * 3))
    ctx.record("max_bytes_1", bases(max_bytes=1))
    ctx.record("max_bytes_4_5_batches", bases(max_bytes=int(size * 4.5)))
    ctx.record("max_bytes_8_batches", bases(max_bytes=size * 8))
    ctx.record("unlimited", bases())
    # Starting mid-way with a small limit.
    response = wire.fetch(client, [("pf-maxbytes", 0, 4)], partition_max_bytes=1)
    ctx.record(
        "from_4_limit_1",
        [b.base_offset for b in wire.decode_batches(response.responses[0].partitions[0].records)],
    )


@scenario()
def long_poll(ctx: Ctx) -> None:
    """min_bytes/max_wait: an empty partition answers after max_wait; a produce from
    another connection answers a waiting fetch early."""
    client = ctx.raw()
    _setup(ctx, client, "pf-longpoll")
    started = time.monotonic()
    part = wire.fetch_one(client, "pf-longpoll", 0, max_wait=1000, min_bytes=1)
    waited = time.monotonic() - started
    ctx.record(
        "empty",
        {
            "error": err(part.error_code),
            "records": len(wire.decode_batches(part.records)),
            "waited_about_max_wait": 0.8 <= waited <= 3.0,
        },
    )
    producer = ctx.raw("longpoll-producer")

    def later() -> None:
        time.sleep(0.5)
        wire.produce(producer, "pf-longpoll", wire.encode_batch([b"wake"], timestamp=T0))

    thread = threading.Thread(target=later)
    started = time.monotonic()
    thread.start()
    part = wire.fetch_one(client, "pf-longpoll", 0, max_wait=8000, min_bytes=1)
    waited = time.monotonic() - started
    thread.join()
    ctx.record(
        "woken",
        {
            "error": err(part.error_code),
            "values": [r["value"] for b in wire.decode_batches(part.records) for r in b.records],
            "answered_early": waited < 4.0,
        },
    )
    # min_bytes larger than what arrives: waits the full max_wait, then returns what exists.
    started = time.monotonic()
    part = wire.fetch_one(client, "pf-longpoll", 0, max_wait=1000, min_bytes=1 << 20)
    waited = time.monotonic() - started
    ctx.record(
        "min_bytes_not_reached",
        {
            "values": [r["value"] for b in wire.decode_batches(part.records) for r in b.records],
            "waited_about_max_wait": 0.8 <= waited <= 3.0,
        },
    )


@scenario()
def multi_partition_produce(ctx: Ctx) -> None:
    """One produce request for several partitions and topics, including an unknown one."""
    client = ctx.raw()
    _setup(ctx, client, "pf-multi", 3)
    batch = wire.encode_batch([b"m"], timestamp=T0)
    response = client.request(
        wire.PRODUCE,
        9,
        transactional_id=None,
        acks=-1,
        timeout=10000,
        topic_data=[
            {
                "name": "pf-multi",
                "partition_data": [
                    {"index": 0, "records": batch},
                    {"index": 2, "records": batch},
                    {"index": 9, "records": batch},
                ],
            },
            {"name": "pf-multi-missing", "partition_data": [{"index": 0, "records": batch}]},
        ],
    )
    ctx.record(
        "responses",
        sorted(
            (t.name, p.index, err(p.error_code), p.base_offset)
            for t in response.responses
            for p in t.partition_responses
        ),
    )


@scenario()
def partition_listed_twice(ctx: Ctx) -> None:
    """A partition listed more than once in one request: Produce appends it once (its last
    entry) and answers it once; Fetch reads it once (its last entry) at its first place."""
    client = ctx.raw()
    _setup(ctx, client, "pf-twice", partitions=2)
    batches = [wire.encode_batch([Rec(b"v%d" % i)], timestamp=T0) for i in range(3)]
    response = client.request(
        wire.PRODUCE,
        9,
        transactional_id=None,
        acks=-1,
        timeout=10000,
        topic_data=[
            {
                "name": "pf-twice",
                "partition_data": [{"index": 0, "records": b} for b in batches],
            }
        ],
    )
    ctx.record(
        "produce",
        [
            (t.name, p.index, err(p.error_code), p.base_offset)
            for t in response.responses
            for p in t.partition_responses
        ],
    )
    ctx.record("end_offset", wire.list_offsets(client, "pf-twice", -1, 0).offset)
    second = wire.produce(client, "pf-twice", batches[0])
    ctx.record("next_produce", _produced(second, ctx))
    fetched = wire.fetch(client, [("pf-twice", 0, 1), ("pf-twice", 1, 0), ("pf-twice", 0, 0)])
    ctx.record(
        "fetch",
        [
            (t.topic, p.partition_index, err(p.error_code))
            + tuple(b.base_offset for b in wire.decode_batches(p.records))
            for t in fetched.responses
            for p in t.partitions
        ],
    )
    values = wire.decode_batches(wire.fetch_one(client, "pf-twice", 0).records)
    ctx.record("values", [r["value"] for b in values for r in b.records])


@scenario()
def fetch_by_topic_id_versions(ctx: Ctx) -> None:
    """Fetch v13-v18 name topics by id (KIP-516): the same records at every version; v17
    and v18 add replica fields only (KIP-853, KIP-1166); an unknown id."""
    client = ctx.raw()
    _setup(ctx, client, "pf-ids")
    recs = [Rec(b"k%d" % i, b"v%d" % i, timestamp=T0 + i) for i in range(3)]
    ctx.record("produce", _produced(wire.produce(client, "pf-ids", wire.encode_batch(recs)), ctx))
    topic_id = wire.metadata(client, ["pf-ids"]).topics[0].topic_id
    for version in (13, 16, 17, 18):
        for name, wanted in (("known", topic_id), ("unknown", uuid.UUID(int=99))):
            response = wire.fetch(client, [(wanted, 0, 0)], max_bytes=1 << 20, version=version)
            ctx.record(f"v{version}.{name}.error", err(response.error_code))
            topic = response.responses[0]
            ctx.record(f"v{version}.{name}.id_echoed", topic.topic_id == wanted)
            ctx.record(f"v{version}.{name}.partition", _fetched(topic.partitions[0], ctx))


@scenario()
def produce_by_topic_id(ctx: Ctx) -> None:
    """Produce v13 names topics by id (KIP-516): a known id, an unknown id and an invalid
    partition in one request; the records read back by name."""
    client = ctx.raw()
    _setup(ctx, client, "pf-produce-ids")
    topic_id = wire.metadata(client, ["pf-produce-ids"]).topics[0].topic_id
    batch = wire.encode_batch([Rec(b"k", b"v%d" % i, timestamp=T0 + i) for i in range(2)])
    response = client.request(
        wire.PRODUCE,
        13,
        transactional_id=None,
        acks=-1,
        timeout=10000,
        topic_data=[
            {"topic_id": topic_id, "partition_data": [{"index": 0, "records": batch}]},
            {"topic_id": uuid.UUID(int=77), "partition_data": [{"index": 0, "records": batch}]},
            {"topic_id": topic_id, "partition_data": [{"index": 5, "records": batch}]},
        ],
    )
    ctx.record(
        "responses",
        sorted(
            (
                "known" if t.topic_id == topic_id else str(t.topic_id),
                sorted(
                    (p.index, err(p.error_code), p.base_offset, p.error_message)
                    for p in t.partition_responses
                ),
            )
            for t in response.responses
        ),
    )
    by_name = client.request(
        wire.PRODUCE,
        12,
        transactional_id=None,
        acks=-1,
        timeout=10000,
        topic_data=[{"name": "pf-produce-ids", "partition_data": [{"index": 5, "records": batch}]}],
    )
    part = by_name.responses[0].partition_responses[0]
    ctx.record("v12_bad_partition", (err(part.error_code), part.error_message))
    ctx.record("fetched", _fetched(wire.fetch_one(client, "pf-produce-ids", 0), ctx))
