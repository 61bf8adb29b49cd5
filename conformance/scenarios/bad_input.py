"""Bad input: corrupt and oversized batches, unknown topics, unsupported versions and
API keys, malformed frames. After each, the broker must keep serving."""

from __future__ import annotations

import struct
from typing import Any

from conformance import wire
from conformance.scenarios import Ctx, scenario
from conformance.wire import Rec, err
from tests.support.rawclient import RawClient


def _after(ctx: Ctx, client: RawClient, step: str, send: Any) -> None:
    """Run `send`; record its error code, or whether the broker closed the connection."""
    try:
        result = send()
        ctx.record(step, err(result.error_code))
    except (ConnectionError, OSError) as exc:
        ctx.record(step, f"connection closed ({type(exc).__name__})")


def _closed(client: RawClient) -> str:
    return "closed" if client.closed_by_broker(3.0) else "open"


@scenario()
def corrupt_batches(ctx: Ctx) -> None:
    """Bad CRC, bad magic, truncated batch, wrong record count, bad lengths; earlier data
    survives and the partition keeps accepting good batches."""
    client = ctx.raw()
    ctx.record("create", err(wire.create_topic(client, "bad-crc", 1).error_code))
    ctx.check(wire.wait_for_topic(client, "bad-crc", 1), "topic ready")
    good = wire.encode_batch([b"good"])
    ctx.record("good", err(wire.produce(client, "bad-crc", good).error_code))

    def send(batch: bytes, step: str) -> None:
        _after(ctx, client, step, lambda: wire.produce(client, "bad-crc", batch))

    send(wire.encode_batch([b"x"], corrupt_crc=True), "bad_crc")
    send(wire.encode_batch([b"x"], magic=1), "magic_1")
    send(wire.encode_batch([b"x"], magic=3), "magic_3")
    send(good[:40], "truncated_header")
    send(good[:-3], "truncated_records")
    wrong_count = bytearray(wire.encode_batch([b"x", b"y"]))
    struct.pack_into(">i", wrong_count, 57, 5)  # record count (inside the CRC: re-sign)
    import crc32c

    struct.pack_into(">I", wrong_count, 17, crc32c.crc32c(bytes(wrong_count[21:])))
    send(bytes(wrong_count), "record_count_mismatch")
    long_length = bytearray(good)
    struct.pack_into(">i", long_length, 8, len(good) * 4)
    send(bytes(long_length), "batch_length_too_long")
    send(good + good, "two_batches_one_request")
    # Valid CRC around a compressed payload that does not decompress.
    send(wire.encode_batch([b"x" * 200], compression="gzip", garble_payload=True), "bad_gzip")
    send(wire.encode_batch([b"x" * 200], compression="zstd", garble_payload=True), "bad_zstd")
    send(b"", "empty_records")
    client = ctx.raw("after-bad")
    fetched = wire.fetch_one(client, "bad-crc", 0)
    ctx.record(
        "log_after",
        {
            "hw": fetched.high_watermark,
            "values": [
                r.get("value", r) for b in wire.decode_batches(fetched.records) for r in b.records
            ],
        },
    )
    ctx.record("still_accepts", err(wire.produce(client, "bad-crc", good).error_code))


@scenario()
def oversized(ctx: Ctx) -> None:
    """Batches over message.max.bytes (broker default) and over a topic's
    max.message.bytes; a batch just under the limit."""
    client = ctx.raw()
    ctx.record("create", err(wire.create_topic(client, "big-default", 1).error_code))
    ctx.record(
        "create_small",
        err(wire.create_topic(client, "big-small", 1, max_message_bytes="2000").error_code),
    )
    ctx.check(wire.wait_for_topic(client, "big-small", 1), "topic ready")
    ctx.check(wire.wait_for_topic(client, "big-default", 1), "topic ready")
    for step, topic, size in [
        ("default.just_under", "big-default", 1_000_000),
        ("default.over", "big-default", 1_100_000),
        ("small.under", "big-small", 1500),
        ("small.over", "big-small", 2500),
    ]:
        part = wire.produce(client, topic, wire.encode_batch([Rec(b"x" * size)]))
        ctx.record(step, {"error": err(part.error_code), "base_offset": part.base_offset})


@scenario()
def unknown_targets(ctx: Ctx) -> None:
    """Produce to an unknown topic (auto-creation does not apply to Produce), to an
    unknown partition, to an invalid topic name."""
    client = ctx.raw()
    ctx.record("create", err(wire.create_topic(client, "unk-one", 1).error_code))
    ctx.check(wire.wait_for_topic(client, "unk-one", 1), "topic ready")
    batch = wire.encode_batch([b"x"])
    ctx.record("unknown_topic", err(wire.produce(client, "unk-none", batch).error_code))
    ctx.record("unknown_partition", err(wire.produce(client, "unk-one", batch, 3).error_code))
    ctx.record("negative_partition", err(wire.produce(client, "unk-one", batch, -1).error_code))
    ctx.record("invalid_name", err(wire.produce(client, "bad name!", batch).error_code))
    md = wire.metadata(client, ["unk-none"])
    ctx.record("not_auto_created_by_produce", err(md.topics[0].error_code))


@scenario()
def unsupported_versions(ctx: Ctx) -> None:
    """A request at a version the broker does not support, below the floor, an unknown
    API key, a truncated body, a frame with a negative size: how each connection ends."""
    bootstrap_client = ctx.raw()
    versions = {
        k.api_key: (k.min_version, k.max_version)
        for k in wire.api_versions(bootstrap_client).api_keys
    }

    def raw_frame(api_key: int, version: int, body: bytes = b"") -> bytes:
        frame = struct.pack(">hhih", api_key, version, 77, 4) + b"conf" + body
        return struct.pack(">i", len(frame)) + frame

    cases = {
        "metadata_v99": raw_frame(wire.METADATA, 99, b"\x00"),
        "produce_v2_below_floor": raw_frame(wire.PRODUCE, 2, b"\x00" * 16),
        "fetch_v0": raw_frame(wire.FETCH, 0, b"\x00" * 16),
        "api_key_9999": raw_frame(9999, 0),
        "api_key_negative": raw_frame(-5, 0),
        "truncated_metadata_v12": raw_frame(wire.METADATA, 12, b"\x00\x00\x00\x05")[:-2],
    }
    for step, data in cases.items():
        client = ctx.raw()
        client.send_raw(data)
        if step.startswith("truncated"):
            ctx.record(step, _closed(client))
            continue
        try:
            client.sock.settimeout(3.0)
            frame = client.read_frame()
            correlation, error = struct.unpack_from(">ih", frame, 0)
            ctx.record(
                step, {"answered": True, "error_head": err(error) if correlation == 77 else None}
            )
        except (ConnectionError, OSError) as exc:
            ctx.record(step, f"closed ({'timeout' if isinstance(exc, TimeoutError) else 'eof'})")
    client = ctx.raw()
    client.send_raw(struct.pack(">i", -1))
    ctx.record("negative_frame_size", _closed(client))
    client = ctx.raw()
    ctx.record("still_serving", err(wire.api_versions(client).error_code))
    ctx.record("metadata_advertised_v12", versions.get(wire.METADATA, (0, -1))[1] >= 12)
