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


# -- record-level validation ---------------------------------------------------------------
#
# Batches built byte by byte: `_record` writes one record's fields (with a declared
# length that may lie), `_batch` wraps a records payload (compressed as asked) with a
# valid header and CRC around whatever record count it is told.

CODECS = ("none", "gzip", "snappy", "lz4", "zstd")


def _zigzag(value: int) -> bytes:
    return wire._varint(value)


def _record(
    offset_delta: int,
    *,
    key: bytes | None = b"k",
    value: bytes | None = b"v",
    timestamp_delta: int = 0,
    headers: bytes = b"\x00",
    length_adjust: int = 0,
) -> bytes:
    body = b"\x00" + _zigzag(timestamp_delta) + _zigzag(offset_delta)
    body += wire._bytes_field(key) + wire._bytes_field(value) + headers
    return _zigzag(len(body) + length_adjust) + body


def _record_head(value_size: int) -> bytes:
    """A one-record payload up to its value bytes: length, fields, value length (the value
    itself, `value_size` bytes, and an empty header count must follow)."""
    fields = b"\x00" + _zigzag(0) + _zigzag(0) + _zigzag(-1) + _zigzag(value_size)
    return _zigzag(len(fields) + value_size + 1) + fields


def _compress(codec: str, payload: bytes) -> bytes:
    if codec == "none":
        return payload
    import gzip

    import cramjam

    if codec == "gzip":
        return gzip.compress(payload)
    if codec == "snappy":
        return wire._xerial_snappy(payload)
    if codec == "lz4":
        compressor = cramjam.lz4.Compressor(content_checksum=False, block_linked=False)
        compressor.compress(payload)
        return bytes(compressor.finish())
    return bytes(cramjam.zstd.compress(payload))


def _batch(
    payload: bytes,
    count: int,
    codec: str = "none",
    *,
    compressed: bytes | None = None,
    timestamp: int = 1_700_000_000_000,
    max_timestamp: int | None = None,
    log_append_time: bool = False,
) -> bytes:
    """A v2 batch (valid CRC) around `payload` compressed with `codec` (or `compressed`)."""
    import crc32c

    data = _compress(codec, payload) if compressed is None else compressed
    attributes = wire.COMPRESSION[codec] | (0x08 if log_append_time else 0)
    after_crc = (
        struct.pack(
            ">hiqqqhii",
            attributes,
            count - 1,
            timestamp,
            timestamp if max_timestamp is None else max_timestamp,
            -1,
            -1,
            -1,
            count,
        )
        + data
    )
    head = struct.pack(">qiib", 0, 4 + 1 + 4 + len(after_crc), -1, 2)
    return head + struct.pack(">I", crc32c.crc32c(after_crc)) + after_crc


def _values_after(ctx: Ctx, topic: str) -> dict[str, Any]:
    client = ctx.raw("after-" + topic)
    fetched = wire.fetch_one(client, topic, 0)
    return {
        "hw": fetched.high_watermark,
        "values": [
            r.get("value", r) for b in wire.decode_batches(fetched.records) for r in b.records
        ],
    }


@scenario()
def poison_pills(ctx: Ctx) -> None:
    """Batches whose CRC is valid but whose records do not match their header or their
    own lengths, in every codec: each is refused, and the records around them survive."""
    client = ctx.raw()
    topic = "poison"
    ctx.record("create", err(wire.create_topic(client, topic, 1).error_code))
    ctx.check(wire.wait_for_topic(client, topic, 1), "topic ready")
    ctx.record("good_before", err(_produce(client, topic, wire.encode_batch([b"before"]))))
    one, two = _record(0), _record(1)
    cases: dict[str, tuple[bytes, int]] = {
        "claims_1_empty": (b"", 1),
        "claims_5_has_1": (one, 5),
        "claims_1_has_2": (one + two, 1),
        "trailing_bytes": (one + b"\x00\x00", 1),
        "length_shorter_than_fields": (_record(0, length_adjust=-1) + b"\x00", 1),
        "key_runs_past_record": (_record(0, key=b"k" * 40)[:10], 1),
        "negative_header_count": (_record(0, headers=_zigzag(-2)), 1),
        "negative_header_key_length": (_record(0, headers=_zigzag(1) + _zigzag(-1) + b"\x00"), 1),
        "varint_too_long": (b"\x8c\x80\x80\x80\x80\x00" + one[1:], 1),
    }
    # Uncompressed only: Kafka reads a compressed record without its declared length.
    cases_none = {"length_longer_than_fields": (_record(0, length_adjust=1), 1)}
    for codec in CODECS:
        for step, (payload, count) in (cases | (cases_none if codec == "none" else {})).items():
            name = f"{codec}.{step}"
            batch = _batch(payload, count, codec)
            _after(ctx, client, name, lambda b=batch: wire.produce(client, topic, b))
    ctx.record("good_after", err(_produce(client, topic, wire.encode_batch([b"after"]))))
    ctx.record("log_after", _values_after(ctx, topic))


def _produce(client: RawClient, topic: str, batch: bytes) -> Any:
    return wire.produce(client, topic, batch).error_code


@scenario()
def bad_compressed_payloads(ctx: Ctx) -> None:
    """Valid CRC around a compressed payload that is garbled, truncated, followed by junk,
    or empty, in every codec."""
    client = ctx.raw()
    topic = "bad-codec"
    ctx.record("create", err(wire.create_topic(client, topic, 1).error_code))
    ctx.check(wire.wait_for_topic(client, topic, 1), "topic ready")
    payload = b"".join(_record(i, value=b"value-%d" % i * 20) for i in range(20))
    for codec in CODECS[1:]:
        good = _compress(codec, payload)
        cases = {
            "garbled": good[:12] + bytes(b ^ 0x5A for b in good[12:]),
            "truncated": good[:-5],
            "junk_after": good + b"junk",
            "empty": b"",
        }
        for step, data in cases.items():
            batch = _batch(payload, 20, codec, compressed=data)
            _after(ctx, client, f"{codec}.{step}", lambda b=batch: wire.produce(client, topic, b))
    ctx.record("good_after", err(_produce(client, topic, wire.encode_batch([b"after"]))))
    ctx.record("log_after", _values_after(ctx, topic))


def _zstd_piecewise(head: bytes, zeros: int) -> bytes:
    """One zstd frame of `head` and then `zeros` zero bytes, never all in memory."""
    try:
        from compression import zstd  # type: ignore[import-not-found]
    except ImportError:
        from backports import zstd  # type: ignore[no-redef]

    compressor = zstd.ZstdCompressor(level=1)
    out = [compressor.compress(head)]
    piece = bytes(64 << 20)
    for done in range(0, zeros, len(piece)):
        out.append(compressor.compress(piece[: min(len(piece), zeros - done)]))
    out.append(compressor.flush())
    return b"".join(out)


@scenario()
def decompression_bombs(ctx: Ctx) -> None:
    """Small compressed batches that expand to hundreds of MiB or GiB: zeros (the first
    'record' is already wrong) in every codec, and an 8 GiB zstd bomb."""
    client = ctx.raw()
    topic = "bombs"
    ctx.record("create", err(wire.create_topic(client, topic, 1).error_code))
    ctx.check(wire.wait_for_topic(client, topic, 1), "topic ready")
    ctx.record("good_before", err(_produce(client, topic, wire.encode_batch([b"before"]))))
    zstd_256mib = _zstd_piecewise(b"", 256 << 20)
    gzip_64mib = _compress("gzip", bytes(64 << 20))
    bombs = {  # frames and gzip members follow one another, as Kafka's readers allow
        "gzip_256MiB_zeros": _batch(b"", 1, "gzip", compressed=gzip_64mib * 4),
        "lz4_64MiB_zeros": _batch(b"", 1, "lz4", compressed=_compress("lz4", bytes(64 << 20))),
        "snappy_16MiB_zeros": _batch(
            b"", 1, "snappy", compressed=_compress("snappy", bytes(16 << 20))
        ),
        "zstd_256MiB_zeros": _batch(b"", 1, "zstd", compressed=zstd_256mib),
        "zstd_8GiB_zeros": _batch(b"", 1, "zstd", compressed=zstd_256mib * 32),
    }
    for step, batch in bombs.items():
        ctx.record(f"{step}.compressed_kib", len(batch) // 1024)
        _after(ctx, client, step, lambda b=batch: wire.produce(client, topic, b))
    ctx.record("good_after", err(_produce(client, topic, wire.encode_batch([b"after"]))))
    ctx.record("log_after", _values_after(ctx, topic))


@scenario()
def well_formed_bomb(ctx: Ctx) -> None:
    """One record whose 256 MiB value compresses to a few KB (zstd), and one that fits
    the decompression bound: what the broker answers, and that it keeps serving."""
    client = ctx.raw()
    topic = "bomb-record"
    ctx.record("create", err(wire.create_topic(client, topic, 1).error_code))
    ctx.check(wire.wait_for_topic(client, topic, 1), "topic ready")
    for step, size in [("value_8MiB", 8 << 20), ("value_256MiB", 256 << 20)]:
        # The record's fields up to its value's length, then the value's zero bytes.
        head = _record_head(size)
        batch = _batch(b"", 1, "zstd", compressed=_zstd_piecewise(head, size + 1))
        _after(ctx, client, step, lambda b=batch: wire.produce(client, topic, b))
    fetched = wire.fetch_one(client, topic, 0, partition_max_bytes=1024)
    ctx.record("still_serving", err(fetched.error_code))


def _record_errors(part: Any) -> dict[str, Any]:
    return {
        "error": err(part.error_code),
        "message": part.error_message,
        "record_errors": [
            [e.batch_index, e.batch_index_error_message] for e in part.record_errors or ()
        ],
    }


@scenario()
def keyless_records_on_compacted_topic(ctx: Ctx) -> None:
    """A compacted topic refuses records without a key: the batch is rejected and the
    response names each keyless record (KIP-467), uncompressed and compressed."""
    client = ctx.raw()
    topic = "compacted"
    ctx.record(
        "create", err(wire.create_topic(client, topic, 1, cleanup_policy="compact").error_code)
    )
    ctx.check(wire.wait_for_topic(client, topic, 1), "topic ready")
    keyed = [Rec(b"v%d" % i, key=b"k%d" % i) for i in range(4)]
    mixed = [Rec(b"v0", key=b"k0"), Rec(b"v1"), Rec(b"v2", key=b"k2"), Rec(b"v3")]
    for codec in ("none", "zstd"):
        ctx.record(
            f"{codec}.keyed",
            err(_produce(client, topic, wire.encode_batch(keyed, compression=codec))),
        )
        part = wire.produce(client, topic, wire.encode_batch(mixed, compression=codec))
        ctx.record(f"{codec}.mixed", _record_errors(part))
        many = [Rec(b"v") for _ in range(5)]
        part = wire.produce(client, topic, wire.encode_batch(many, compression=codec))
        ctx.record(f"{codec}.all_keyless", _record_errors(part))
    ctx.record("log_after", _values_after(ctx, topic))


def _relative(message: str | None, now: int) -> str | None:
    """Broker-clock numbers in a message as minutes from now ('now-1440min')."""
    import re

    if message is None:
        return None

    long_max = 2**63 - 1  # message.timestamp.before.max.ms's default: [now - it, ...]

    def show(match: re.Match[str]) -> str:
        value = int(match.group(0))
        for anchor, name in ((now, "now"), (now - long_max, "now-Long.MAX")):
            if abs(value - anchor) <= 30 * 86_400_000:
                return f"{name}{round((value - anchor) / 60_000):+d}min"
        return match.group(0)

    return re.sub(r"-?\d{12,}", show, message)


@scenario()
def record_timestamps(ctx: Ctx) -> None:
    """message.timestamp.before.max.ms / after.max.ms (explicit and Kafka's defaults), a
    producer setting the LogAppendTime bit, and record errors of both kinds at once."""
    client = ctx.raw()
    day, hour = 86_400_000, 3_600_000
    window = {
        "message_timestamp_before_max_ms": str(day),
        "message_timestamp_after_max_ms": str(hour),
    }
    topics = {
        "ts-window": window,
        "ts-default": {},
        "ts-append-time": {"message_timestamp_type": "LogAppendTime"},
        "ts-compacted": {"cleanup_policy": "compact", **window},
    }
    for topic, configs in topics.items():
        ctx.record(
            f"create.{topic}", err(wire.create_topic(client, topic, 1, **configs).error_code)
        )
        ctx.check(wire.wait_for_topic(client, topic, 1), "topic ready")
    now = wire.now_ms()

    def send(step: str, topic: str, records: list[Rec], **kw: Any) -> None:
        batch = wire.encode_batch(records, timestamp=now, **kw)
        part = wire.produce(client, topic, batch)
        result = _record_errors(part)
        result["message"] = _relative(result["message"], now)
        result["record_errors"] = [[i, _relative(m, now)] for i, m in result["record_errors"]]
        ctx.record(step, result)

    send(
        "window.in_range",
        "ts-window",
        [Rec(b"a", timestamp=now - day // 2), Rec(b"b", timestamp=now + hour // 2)],
    )
    send(
        "window.too_old",
        "ts-window",
        [Rec(b"a", timestamp=now), Rec(b"b", timestamp=now - 2 * day)],
    )
    send(
        "window.too_new",
        "ts-window",
        [Rec(b"a", timestamp=now + 2 * hour), Rec(b"b", timestamp=now)],
    )
    send(
        "window.zstd_both",
        "ts-window",
        [Rec(b"a", timestamp=now + 2 * hour), Rec(b"b", timestamp=now - 2 * day)],
        compression="zstd",
    )
    send("default.old_is_fine", "ts-default", [Rec(b"a", timestamp=1_000)])
    send("default.two_hours_ahead", "ts-default", [Rec(b"a", timestamp=now + 2 * hour)])
    send(
        "compacted.key_and_time",
        "ts-compacted",
        [Rec(b"a"), Rec(b"b", key=b"k", timestamp=now + 2 * hour), Rec(b"c", key=b"k")],
    )
    send("compacted.key_only", "ts-compacted", [Rec(b"a"), Rec(b"b", key=b"k")])
    # A producer may not claim LogAppendTime: Kafka checks it where the topic is one.
    for topic in ("ts-append-time", "ts-window"):
        for codec in ("none", "zstd"):
            batch = _batch(
                _record(0) + _record(1, key=None, value=b"vvv"),
                2,
                codec,
                timestamp=now,
                max_timestamp=now,
                log_append_time=True,
            )
            part = wire.produce(client, topic, batch)
            result = _record_errors(part)
            result["message"] = _relative(result["message"], now)
            result["record_errors"] = [[i, _relative(m, now)] for i, m in result["record_errors"]]
            ctx.record(f"log_append_time_bit.{topic}.{codec}", result)
    for topic in topics:
        ctx.record(f"log_after.{topic}", _values_after(ctx, topic))


@scenario()
def offset_deltas(ctx: Ctx) -> None:
    """Records whose offset deltas are not 0..n-1 in order (uncompressed and compressed)."""
    client = ctx.raw()
    topic = "offset-deltas"
    ctx.record("create", err(wire.create_topic(client, topic, 1).error_code))
    ctx.check(wire.wait_for_topic(client, topic, 1), "topic ready")
    for codec in ("none", "zstd"):
        for step, deltas in [("swapped", (1, 0)), ("from_one", (1, 2)), ("repeated", (0, 0))]:
            payload = b"".join(
                _record(d, value=b"%s-%d" % (step.encode(), i)) for i, d in enumerate(deltas)
            )
            batch = _batch(payload, 2, codec)
            _after(ctx, client, f"{codec}.{step}", lambda b=batch: wire.produce(client, topic, b))
    ctx.record("log_after", _values_after(ctx, topic))


@scenario()
def declared_length_longer(ctx: Ctx) -> None:
    """A compressed record whose declared length is longer than its fields take (and
    nothing follows): Kafka's streaming reader never looks at the declared length."""
    client = ctx.raw()
    topic = "length-longer"
    ctx.record("create", err(wire.create_topic(client, topic, 1).error_code))
    ctx.check(wire.wait_for_topic(client, topic, 1), "topic ready")
    for codec in CODECS[1:]:
        batch = _batch(_record(0, value=codec.encode(), length_adjust=1), 1, codec)
        _after(ctx, client, f"{codec}.longer", lambda b=batch: wire.produce(client, topic, b))
    ctx.record("good_after", err(_produce(client, topic, wire.encode_batch([b"after"]))))
    ctx.record("log_after", _values_after(ctx, topic))
