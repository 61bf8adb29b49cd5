"""The W3C `traceparent` header of a batch's first record, for the Produce span's link to
the producing application's trace (`broker/request_spans.py`).

Read only from uncompressed batches, and only the first record: a producer that
propagates context per record (OpenTelemetry's Kafka instrumentations) stamps each one,
and a batch is one send. Anything malformed is None: the record checks answer it.
"""

from __future__ import annotations

from contextplane.protocol.record_codec import zigzag_varint
from contextplane.protocol.records import BATCH_HEADER_BYTES

TRACEPARENT = b"traceparent"
# A version-00 traceparent is 55 characters; later versions may append fields.
TRACEPARENT_BYTES_MAX = 256
HEADERS_SCANNED_MAX = 16


def first_traceparent(batch: bytes | memoryview) -> bytes | None:
    """The first record's `traceparent` header value of an uncompressed batch, or None."""
    buf = memoryview(batch)
    try:
        _, position = zigzag_varint(buf, BATCH_HEADER_BYTES)  # the record's length
        position += 1  # attributes
        _, position = zigzag_varint(buf, position)  # timestamp delta
        _, position = zigzag_varint(buf, position)  # offset delta
        for _ in range(2):  # key, value
            length, position = zigzag_varint(buf, position)
            position += max(length, 0)
        count, position = zigzag_varint(buf, position)
        for _ in range(min(count, HEADERS_SCANNED_MAX)):
            name_length, position = zigzag_varint(buf, position)
            if name_length < 0:
                return None
            name = bytes(buf[position : position + name_length])
            position += max(name_length, 0)
            value_length, position = zigzag_varint(buf, position)
            if name == TRACEPARENT:
                if not 0 < value_length <= TRACEPARENT_BYTES_MAX:
                    return None
                value = bytes(buf[position : position + value_length])
                return value if len(value) == value_length else None
            position += max(value_length, 0)
    except (IndexError, ValueError):
        return None
    return None
