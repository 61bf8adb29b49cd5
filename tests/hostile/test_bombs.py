"""Decompression bombs against a real broker: each is refused with Kafka's code (or
MESSAGE_TOO_LARGE past message.max.decompression.ratio), from two connections at once,
while another client keeps being answered and the broker's memory stays flat."""

from __future__ import annotations

import pytest

from contextplane.protocol.decompress import GZIP, LZ4, SNAPPY, ZSTD
from contextplane.protocol.error_codes import ErrorCode
from tests.hostile import bombs
from tests.hostile.bombs import MIB
from tests.hostile.support import hostile_round
from tests.support.broker import BrokerProcess

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
