"""Probes of the record path: a round trip read back exactly, each compression codec,
and offsets looked up by timestamp."""

from __future__ import annotations

from typing import Any

from contextplane.cli.probes.base import ProbeContext, ProbeFailure
from contextplane.cli.probes.clients import Record, produce, read_back

CODECS = ("gzip", "snappy", "lz4", "zstd")
# Compressible values, enough of them for a batch worth compressing.
_CODEC_RECORDS = 50


def produce_fetch(ctx: ProbeContext) -> str:
    """acks=all and idempotent; keys (one null), headers (a binary value, a repeated
    name), CreateTime timestamps and a tombstone read back exactly, at dense offsets."""
    from confluent_kafka import TIMESTAMP_CREATE_TIME

    topic = ctx.create_topic()
    base_ms = ctx.clock.wall_ms() - 60_000
    sent = [
        Record(b"value-0", b"key-0", [("h", b"one"), ("bin", bytes(range(256)))], base_ms),
        Record(b"value-1", None, [("h", b"a"), ("h", b"b")], base_ms + 1),
        Record(None, b"key-2", [], base_ms + 2),  # a tombstone
    ]
    delivered = produce(ctx, topic, sent, **{"enable.idempotence": True})
    offsets = [d.offset for d in delivered]
    if offsets != list(range(len(sent))):
        raise ProbeFailure(f"acknowledged offsets {offsets}, expected 0-{len(sent) - 1}")
    read = read_back(ctx, topic, len(sent))
    for record, message in zip(sent, read, strict=True):
        seen = Record(
            message.value(),
            message.key(),
            list(message.headers() or []),
            message.timestamp()[1],
        )
        if seen != record or message.timestamp()[0] != TIMESTAMP_CREATE_TIME:
            raise ProbeFailure(
                f"offset {message.offset()} read back as {_shown(seen)}, produced {_shown(record)}"
            )
    return (
        f"{len(sent)} records (keys, a null key, headers, CreateTime, a tombstone) "
        "acknowledged with acks=all and idempotence at offsets 0-2, read back exactly"
    )


def _shown(record: Record) -> str:
    headers = [(name, value[:8]) for name, value in record.headers]
    return f"key={record.key!r} value={record.value!r} headers={headers} ts={record.timestamp_ms}"


def compression(codec: str) -> Any:
    """The probe of one codec: records produced compressed read back unchanged."""

    def probe(ctx: ProbeContext) -> str:
        topic = ctx.create_topic()
        sent = [Record(f"{codec} record {i:04d} ".encode() * 20) for i in range(_CODEC_RECORDS)]
        produce(ctx, topic, sent, **{"compression.type": codec, "linger.ms": 50})
        values = [message.value() for message in read_back(ctx, topic, len(sent))]
        if values != [record.value for record in sent]:
            raise ProbeFailure(f"{codec}: records read back differ from those produced")
        return f"{len(sent)} records produced with compression.type={codec}, read back unchanged"

    return probe


def offsets_by_timestamp(ctx: ProbeContext) -> str:
    """ListOffsets by time (offsets_for_times): the first offset at or after a time, -1
    past the last record; the log's start and end (watermarks)."""
    from confluent_kafka import Consumer, TopicPartition

    topic = ctx.create_topic()
    base_ms = ctx.clock.wall_ms() - 60_000
    produce(ctx, topic, [Record(b"%d" % i, None, [], base_ms + 1000 * i) for i in range(3)])
    consumer = Consumer(ctx.client_config(**{"group.id": ctx.group("reader")}))
    try:
        asked = {base_ms - 1: 0, base_ms + 500: 1, base_ms + 2000: 2, base_ms + 5000: -1}
        # One lookup a time: librdkafka asks once per partition, whatever the list holds.
        got = {
            at: consumer.offsets_for_times(
                [TopicPartition(topic, 0, at)], timeout=ctx.remaining_s()
            )[0].offset
            for at in asked
        }
        if got != asked:
            shown = {at - base_ms: offset for at, offset in got.items()}
            raise ProbeFailure(f"offsets by time (ms after the first record): {shown}")
        marks = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=ctx.remaining_s())
        if tuple(marks) != (0, 3):
            raise ProbeFailure(f"watermarks {tuple(marks)}, expected (0, 3)")
    finally:
        consumer.close()
    return "3 records 1 s apart: offsets by time 0, 1, 2 and -1 past the last; watermarks 0-3"
