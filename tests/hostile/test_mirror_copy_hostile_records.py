"""Source records the copy mirror's client cannot read as they are: a header name that is
not UTF-8 (Kafka takes any bytes) stops the mirror with an error naming the record, not
a traceback from inside the client, and nothing of its round is committed on the target.

Source and target are one broker here (one broker process at a time): the mirror copies
a topic onto itself, which `created` lets it do."""

from __future__ import annotations

import struct
from pathlib import Path

import crc32c
import pytest

from contextplane.cli.kafka_client import CommandError
from contextplane.cli.mirror_copy import CopyMirror
from contextplane.cli.mirror_state import STATE_TOPIC
from tests.hostile.support import create_topic, produce
from tests.support.inprocess import InProcessBroker
from tests.support.rawclient import RawClient, _varint

TIMESTAMP_MS = 1_700_000_000_000


def _batch_with_header(name: bytes, value: bytes) -> bytes:
    """One record, value b"v", with one header (uncompressed magic v2)."""
    body = bytearray(b"\x00") + _varint(0) + _varint(0) + _varint(-1) + _varint(1) + b"v"
    body += _varint(1) + _varint(len(name)) + name + _varint(len(value)) + value
    records = _varint(len(body)) + body
    after_crc = struct.pack(">hiqqqhii", 0, 0, TIMESTAMP_MS, TIMESTAMP_MS, -1, -1, -1, 1) + bytes(
        records
    )
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
