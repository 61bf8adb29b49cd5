"""The `traceparent` of a batch's first record (protocol/trace_context.py): found among
other headers, absent, or unreadable (a truncated or hostile batch is None, never an
exception: the record checks answer it)."""

from __future__ import annotations

from contextplane.protocol.record_codec import encode_varint
from contextplane.protocol.records import BATCH_HEADER_BYTES
from contextplane.protocol.trace_context import first_traceparent

TRACEPARENT = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def _batch(headers: list[tuple[bytes, bytes]], key: bytes | None = b"k") -> bytes:
    def field(value: bytes | None) -> bytes:
        return encode_varint(-1) if value is None else encode_varint(len(value)) + value

    body = b"\x00" + encode_varint(0) + encode_varint(0) + field(key) + field(b"value")
    body += encode_varint(len(headers))
    for name, value in headers:
        body += field(name) + field(value)
    return bytes(BATCH_HEADER_BYTES) + encode_varint(len(body)) + body


def test_the_first_records_traceparent_among_other_headers() -> None:
    batch = _batch([(b"ce_id", b"1"), (b"traceparent", TRACEPARENT)], key=None)
    assert first_traceparent(batch) == TRACEPARENT
    assert first_traceparent(memoryview(batch)) == TRACEPARENT


def test_no_traceparent_is_none() -> None:
    assert first_traceparent(_batch([])) is None
    assert first_traceparent(_batch([(b"tracestate", b"a=b")])) is None


def test_a_truncated_batch_is_none_at_every_length() -> None:
    batch = _batch([(b"traceparent", TRACEPARENT)])
    assert all(first_traceparent(batch[:cut]) is None for cut in range(len(batch)))


def test_an_oversized_value_or_a_negative_name_length_is_none() -> None:
    assert first_traceparent(_batch([(b"traceparent", b"0" * 257)])) is None
    hostile = bytes(BATCH_HEADER_BYTES) + encode_varint(20) + b"\x00" + encode_varint(0) * 2
    hostile += encode_varint(-1) * 2 + encode_varint(1) + encode_varint(-5)
    assert first_traceparent(hostile) is None
