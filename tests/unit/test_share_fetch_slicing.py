"""`acquired_batches`: the batches a ShareFetch answer keeps, by the acquired ranges."""

from __future__ import annotations

import struct

from contextplane.broker.handlers.share_fetch import acquired_batches
from contextplane.coordinators.share_partition import Acquired


def _batch(base: int, count: int) -> bytes:
    """A RecordBatch header's fields the slicing reads (base offset, length, last offset
    delta), padded to a 61-byte batch."""
    body = bytearray(49)
    struct.pack_into(">i", body, 11, count - 1)  # last offset delta at byte 23 of the batch
    return struct.pack(">qi", base, len(body)) + bytes(body)


def test_only_batches_overlapping_an_acquired_range_are_kept() -> None:
    batches = [_batch(base, 10) for base in range(0, 60, 10)]
    data = b"".join(batches)
    # 5-12 spans the first two batches; 41 is in the fifth; the others hold none.
    kept = acquired_batches(data, [Acquired(5, 12, 1), Acquired(41, 41, 2)])
    assert kept == batches[0] + batches[1] + batches[4]
    assert acquired_batches(data, [Acquired(0, 59, 1)]) == data
    assert acquired_batches(data, []) == b""
    # A truncated tail (a read cut mid-batch) is never sent.
    assert acquired_batches(data[:-5], [Acquired(55, 55, 1)]) == b""
