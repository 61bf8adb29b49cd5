"""Poison pills against a real broker: batches with a valid CRC whose records do not
match their header or their own lengths. Each is refused (INVALID_RECORD), and a real
consumer reads every valid record after it instead of looping on its offset."""

from __future__ import annotations

import pytest

from conformance import wire
from contextplane.protocol.decompress import GZIP, LZ4, NONE, SNAPPY, ZSTD
from contextplane.protocol.error_codes import ErrorCode
from tests.hostile.support import batch_around, compress, hostile_round
from tests.support.broker import BrokerProcess

INVALID_RECORD = {int(ErrorCode.invalid_record)}
CODECS = {"none": NONE, "gzip": GZIP, "snappy": SNAPPY, "lz4": LZ4, "zstd": ZSTD}


def record(
    offset_delta: int,
    *,
    key: bytes | None = b"k",
    value: bytes | None = b"v",
    headers: bytes = b"\x00",
    length_adjust: int = 0,
) -> bytes:
    body = b"\x00" + wire._varint(0) + wire._varint(offset_delta)
    body += wire._bytes_field(key) + wire._bytes_field(value) + headers
    return wire._varint(len(body) + length_adjust) + body


PILLS: dict[str, tuple[bytes, int]] = {
    # The two found in the field: a count over an empty payload, a count over too few.
    "claims one record, holds none": (b"", 1),
    "claims five records, holds one": (record(0), 5),
    "claims one record, holds two": (record(0) + record(1), 1),
    "bytes after the last record": (record(0) + b"\x00\x00", 1),
    "record length longer than its fields": (record(0, length_adjust=2), 1),
    "record length shorter than its fields": (record(0, length_adjust=-1) + b"\x00", 1),
    "key longer than the record": (record(0, key=b"k" * 40)[:12], 1),
    "negative header count": (record(0, headers=wire._varint(-3)), 1),
    "negative header key length": (record(0, headers=b"\x02" + wire._varint(-2) + b"\x00"), 1),
    "offset deltas out of order": (record(1) + record(0), 2),
    "record of zero length": (b"\x00" + record(0), 2),
}


@pytest.mark.parametrize("codec", list(CODECS))
def test_poison_pills_are_refused_and_consumers_read_past_them(
    hostile_broker: BrokerProcess, codec: str
) -> None:
    attacks = [
        (name, batch_around(compress(codec, payload), count, CODECS[codec]), INVALID_RECORD)
        for name, (payload, count) in PILLS.items()
    ]
    hostile_round(hostile_broker, f"pills-{codec}", attacks)
