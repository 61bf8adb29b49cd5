"""The internal topic `__consumer_offsets`: listed as internal, refused to writers, and
holding each commit as a record in Kafka's own key and value formats."""

from __future__ import annotations

import time
from typing import Any

from conformance import wire
from conformance.scenarios import Ctx, scenario
from conformance.wire import err
from contextplane.protocol.offsets_records import (
    decode_key,
    decode_offset_commit_value,
    partition_for,
)

TOPIC = "__consumer_offsets"
PARTITIONS = 50


def _commit(client: Any, group: str, offsets: dict[tuple[str, int], int], text: str) -> str:
    return err(wire.commit_when_ready(client, group, offsets, metadata_text=text))


def _records(batch_bytes: bytes) -> list[tuple[int, int, int, list[tuple[bytes, bytes | None]]]]:
    """(producer id, attributes, record count, [(key, value)]) per batch (uncompressed)."""
    out = []
    pos = 0
    data = bytes(batch_bytes or b"")
    while pos + 61 <= len(data):
        batch = wire.decode_batches(data[pos:])[0]
        length = int.from_bytes(data[pos + 8 : pos + 12], "big")
        payload = data[pos + 61 : pos + 12 + length]
        rpos = 0
        pairs: list[tuple[bytes, bytes | None]] = []
        for _ in range(len(batch.records)):
            size, rpos = wire._read_varint(payload, rpos)
            end = rpos + size
            rpos += 1
            _, rpos = wire._read_varint(payload, rpos)
            _, rpos = wire._read_varint(payload, rpos)
            key, rpos = wire._read_bytes(payload, rpos)
            value, rpos = wire._read_bytes(payload, rpos)
            pairs.append((key or b"", value))
            rpos = end
        out.append((batch.producer_id, batch.attributes, len(pairs), pairs))
        pos += 12 + length
    return out


@scenario()
def listed_and_refused(ctx: Ctx) -> None:
    """Metadata lists __consumer_offsets as internal with 50 partitions once a group has
    committed; Produce, CreateTopics, DeleteTopics, CreatePartitions, DeleteRecords and
    AlterConfigs on it answer as Kafka does."""
    client = ctx.raw()
    ctx.record("create", err(wire.create_topic(client, "ot-listed", 1).error_code))
    ctx.check(wire.wait_for_topic(client, "ot-listed", 1), "topic ready")
    ctx.record("commit", _commit(client, "ot-listed-g", {("ot-listed", 0): 3}, ""))
    ctx.check(wire.wait_for_topic(client, TOPIC, PARTITIONS), "offsets topic ready")
    every = {t.name: t for t in wire.metadata(client, None).topics}
    internal = every.get(TOPIC)
    ctx.record("listed", internal is not None)
    ctx.record("is_internal", None if internal is None else internal.is_internal)
    named = wire.metadata(client, [TOPIC]).topics[0]
    ctx.record("by_name.error", err(named.error_code))
    ctx.record("by_name.is_internal", named.is_internal)
    ctx.record("by_name.partitions", len(named.partitions))
    described = wire.describe_configs(client, 2, TOPIC, ["cleanup.policy"])
    ctx.record("describe.error", err(described.error_code))
    ctx.record("describe.cleanup_policy", [c.value for c in described.configs])
    produced = wire.produce(client, TOPIC, wire.encode_batch([b"x"]), partition=0)
    ctx.record("produce.error", err(produced.error_code))
    ctx.record("produce.message", produced.error_message)
    created = wire.create_topic(client, TOPIC, 1)
    ctx.record("create_topics.error", err(created.error_code))
    ctx.record("create_topics.message", created.error_message)
    partitions = wire.create_partitions(client, TOPIC, PARTITIONS + 1, validate_only=True)
    ctx.record("create_partitions.error", err(partitions.error_code))
    ctx.record("create_partitions.message", partitions.error_message)
    deleted_records = wire.delete_records(client, TOPIC, 0, partition=0)
    ctx.record("delete_records.error", err(deleted_records.error_code))
    altered = wire.alter_configs(client, TOPIC, {"retention.ms": "1000"}, validate_only=True)
    ctx.record("alter_configs.error", err(altered.error_code))
    deleted = wire.delete_topics(client, [TOPIC]).responses[0]
    ctx.record("delete_topics.error", err(deleted.error_code))
    ctx.record("delete_topics.message", deleted.error_message)
    # Whether Metadata lists it right after the delete is a race on both brokers (Kafka
    # applies the deletion asynchronously; contextplane recreates the topic at its next
    # commit or snapshot), so it is not compared.


@scenario()
def commit_record(ctx: Ctx) -> None:
    """An OffsetCommit of two partitions appears in __consumer_offsets, in the group's
    partition, as one batch (producer id -1) of OffsetCommitKey / OffsetCommitValue
    records that decode to the committed values."""
    client = ctx.raw()
    topic, group = "ot-commit", "ot-commit-g"
    ctx.record("create", err(wire.create_topic(client, topic, 2).error_code))
    ctx.check(wire.wait_for_topic(client, topic, 2), "topic ready")
    topic_id = wire.metadata(client, [topic]).topics[0].topic_id
    ctx.record("commit", _commit(client, group, {(topic, 0): 5, (topic, 1): 7}, "meta-ot"))
    ctx.check(wire.wait_for_topic(client, TOPIC, PARTITIONS), "offsets topic ready")
    partition = partition_for(group, PARTITIONS)
    found: list[tuple[int, int, int, list[tuple[bytes, bytes | None]]]] = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        fetched = wire.fetch_one(client, TOPIC, 0, partition=partition)
        found = [
            b
            for b in _records(fetched.records)
            if any(decode_key(k)[1][:2] == (group, topic) for k, _ in b[3])
        ]
        if found:
            break
        time.sleep(0.2)
    ctx.record("batches", len(found))
    if not found:
        return
    producer_id, attributes, count, pairs = found[0]
    ctx.record("batch.producer_id", producer_id)
    ctx.record("batch.compression", attributes & 7)
    ctx.record("batch.records", count)
    for key, value in pairs:
        kind, fields = decode_key(key)
        label = f"record.{fields[2]}"
        ctx.record(f"{label}.key", {"type": kind, "fields": list(fields), "hex": key.hex()})
        if value is None:
            ctx.record(f"{label}.value", None)
            continue
        decoded = decode_offset_commit_value(value)
        ctx.record(
            f"{label}.value",
            {
                "version": decoded.version,
                "offset": decoded.offset,
                "leader_epoch": decoded.leader_epoch,
                "metadata": decoded.metadata,
                "topic_id_matches": decoded.topic_id == topic_id,
            },
        )
