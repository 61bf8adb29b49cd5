"""Decompression bombs against a real broker: each is refused with Kafka's code (or
MESSAGE_TOO_LARGE past message.max.decompression.ratio), from two connections at once,
while another client keeps being answered and the broker's memory stays flat."""

from __future__ import annotations

import pytest

from conformance import wire
from contextplane.protocol.decompress import GZIP, LZ4, SNAPPY, ZSTD
from contextplane.protocol.error_codes import ErrorCode
from tests.hostile import bombs
from tests.hostile.bombs import MIB
from tests.hostile.support import (
    PROBE_ANSWER_S,
    Probe,
    create_topic,
    hostile_round,
    produce,
    send_from,
)
from tests.support.broker import BrokerProcess
from tests.support.rawclient import RawClient

GIB = 1024 * MIB
INVALID_RECORD = {int(ErrorCode.invalid_record)}
TOO_LARGE = {int(ErrorCode.message_too_large)}
UNREADABLE = {int(ErrorCode.unknown_server_error)}


@pytest.mark.parametrize(
    ("codec", "zeros", "record"),
    [
        (ZSTD, 1 * GIB, 1 * GIB),
        (GZIP, 512 * MIB, 512 * MIB),
        (LZ4, 200 * MIB, 200 * MIB),
    ],
    ids=["zstd", "gzip", "lz4"],
)
def test_bombs_are_refused_without_stalling_or_swelling(
    hostile_broker: BrokerProcess, codec: int, zeros: int, record: int
) -> None:
    hostile_round(
        hostile_broker,
        f"bombs-{codec}",
        [
            # Zeros: the first 'record' is already invalid (what Kafka 4.4 answers too).
            (f"{zeros // MIB} MiB of zeros", bombs.zeros(codec, zeros), INVALID_RECORD),
            # One valid record of that size: only the decompression bound stops it.
            (f"one {record // MIB} MiB record", bombs.one_huge_record(codec, record), TOO_LARGE),
        ],
        connections=2,
    )


def test_eight_gib_zstd_bomb_does_not_kill_the_broker(hostile_broker: BrokerProcess) -> None:
    # 256 KB of zstd frames that expand to 8 GiB: the broker used to abort on it.
    hostile_round(
        hostile_broker,
        "bombs-8gib",
        [("8 GiB of zeros", bombs.zeros(ZSTD, 8 * GIB), INVALID_RECORD)],
        connections=2,
    )


def test_snappy_blocks_are_checked_before_they_are_decompressed(
    hostile_broker: BrokerProcess,
) -> None:
    hostile_round(
        hostile_broker,
        "bombs-snappy",
        [
            ("16 MiB of zeros", bombs.zeros(SNAPPY, 16 * MIB), INVALID_RECORD),
            # A raw block whose preamble claims 1 GiB, holding 8 bytes.
            ("block declaring 1 GiB", bombs.snappy_block_declaring(1 * GIB), UNREADABLE),
        ],
        connections=2,
    )


def test_a_record_of_millions_of_headers_is_read_at_compiled_speed(
    hostile_broker: BrokerProcess,
) -> None:
    # One record of 4,000,000 empty headers (about 1 KB of zstd, 8 MB decompressed), from
    # three connections: it straddles decompression chunks, and read header by header in
    # Python it held the validation pool and the GIL for minutes. It is a valid record
    # (Kafka accepts it), so it is accepted; the probe on another connection and a
    # following produce are answered meanwhile.
    client = RawClient(hostile_broker.bootstrap, "hostile")
    create_topic(client, "bombs-headers")
    create_topic(client, "bombs-headers-probe")
    probe = Probe(hostile_broker, "bombs-headers-probe")
    with probe.running():
        answers = send_from(hostile_broker, "bombs-headers", bombs.many_headers(4_000_000), 3)
        assert produce(client, "bombs-headers", wire.encode_batch([b"after"]))[0] == 0
    client.close()
    assert answers == [0, 0, 0], answers
    assert not probe.failures, probe.failures
    assert probe.latencies, "the probe never got an answer"
    assert max(probe.latencies) < PROBE_ANSWER_S, f"probe waited {max(probe.latencies):.2f}s"
