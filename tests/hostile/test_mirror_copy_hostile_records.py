"""Hostile source records for the copy mirror: a header name that is not UTF-8 (Kafka
takes any bytes; the client cannot read it) stops the mirror with an error naming the
record, not a traceback from inside the client, and nothing of its round is committed;
large headers count toward a round's bytes as values do.

Source and target are one broker here (one broker process at a time): the mirror copies
a topic onto itself, which `created` lets it do."""

from __future__ import annotations

import struct
from pathlib import Path

import crc32c
import pytest

from contextplane.cli.kafka_client import CommandError
from contextplane.cli.mirror_copy import CONSUME_BATCH, ROUND_BYTES, CopyMirror
from contextplane.cli.mirror_state import STATE_TOPIC
from tests.hostile.support import create_topic, produce
from tests.support.inprocess import InProcessBroker
from tests.support.rawclient import RawClient, _varint

TIMESTAMP_MS = 1_700_000_000_000
HEADER_BYTES = 10_000
PER_BATCH = 90  # records of a produced batch, below a megabyte


def _batch_with_header(name: bytes, value: bytes, count: int = 1) -> bytes:
    """`count` records, each of value b"v" and one header (uncompressed magic v2)."""
    records = bytearray()
    for index in range(count):
        body = bytearray(b"\x00") + _varint(0) + _varint(index) + _varint(-1) + _varint(1) + b"v"
        body += _varint(1) + _varint(len(name)) + name + _varint(len(value)) + value
        records += _varint(len(body)) + body
    after_crc = struct.pack(
        ">hiqqqhii", 0, count - 1, TIMESTAMP_MS, TIMESTAMP_MS, -1, -1, -1, count
    ) + bytes(records)
    crc = crc32c.crc32c(after_crc)
    return struct.pack(">qiibI", 0, 4 + 1 + 4 + len(after_crc), -1, 2, crc) + after_crc


def test_a_header_name_that_is_not_utf8_is_named_not_a_traceback(tmp_path: Path) -> None:
    broker = InProcessBroker(tmp_path / "broker").start()
    try:
        with RawClient(broker.bootstrap) as client:
            create_topic(client, "headers")
            create_topic(client, STATE_TOPIC, **{"cleanup.policy": "compact"})
            assert produce(client, "headers", _batch_with_header(b"\xff\xfe", b"x")) == (0, 0)
        config = {"bootstrap.servers": broker.bootstrap}
        mirror = CopyMirror(config, config, "onto-itself", [("headers", 0)], {"headers"})
        try:
            with pytest.raises(CommandError, match=r"headers-0 at offset 0 .* not UTF-8"):
                while not mirror.caught_up():
                    mirror.round()
            assert mirror.progress[("headers", 0)].position == 0
        finally:
            mirror.close()
    finally:
        broker.stop()


def test_large_headers_count_toward_a_rounds_bytes(tmp_path: Path) -> None:
    # Records of one-byte values and 10 KB headers: a round stops once it holds
    # ROUND_BYTES of them (checked after each consume of up to CONSUME_BATCH), rather than
    # at ROUND_RECORDS (5,000 records of 1 MB headers would be 5 GB).
    most = ROUND_BYTES // HEADER_BYTES + CONSUME_BATCH
    broker = InProcessBroker(tmp_path / "broker").start()
    try:
        with RawClient(broker.bootstrap) as client:
            create_topic(client, "large")
            create_topic(client, STATE_TOPIC, **{"cleanup.policy": "compact"})
            for _ in range(most // PER_BATCH + 2):
                batch = _batch_with_header(b"h", b"x" * HEADER_BYTES, PER_BATCH)
                assert produce(client, "large", batch)[0] == 0
        config = {"bootstrap.servers": broker.bootstrap}
        mirror = CopyMirror(config, config, "onto-itself", [("large", 0)], {"large"})
        try:
            first = 0
            while not first and not mirror.caught_up():  # until the first fetch answers
                first = mirror.round()
            assert 0 < first <= most
            assert mirror.progress[("large", 0)].position == first
        finally:
            mirror.close()
    finally:
        broker.stop()
