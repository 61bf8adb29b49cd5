"""The mirror's batch handling that needs no cluster: whole batches cut from a fetched
record set, the empty batch that spans a gap, and batches thinned by compaction."""

from __future__ import annotations

import struct

import pytest

from contextplane.cli.mirror_run import complete_batches
from contextplane.errors import KafkaError
from contextplane.protocol.crc import crc32c
from contextplane.protocol.records import empty_batch, parse_header, split_batches
from tests.support.rawclient import record_batch


def at(base_offset: int, batch: bytes) -> bytes:
    return struct.pack(">q", base_offset) + batch[8:]


def test_only_whole_batches_past_the_position_are_kept() -> None:
    first, second, third = (
        at(0, record_batch([b"a", b"b"])),
        at(2, record_batch([b"c"])),
        at(3, record_batch([b"d"])),
    )
    fetched = first + second + third[:-5]  # a fetch ends inside its last batch
    assert complete_batches(fetched, 0) == (first + second, 3)
    assert complete_batches(fetched, 2) == (second, 3)  # the first was appended already
    assert complete_batches(third[:30], 3) == (b"", 3)  # not even a header


def test_the_empty_batch_spans_its_offsets_and_passes_the_checks() -> None:
    gap = empty_batch(5, 10, 1_700_000_000_000)
    [(header, _)] = split_batches(gap, 1 << 20, sparse=True)
    assert (header.base_offset, header.last_offset_delta, header.records_count) == (5, 9, 0)
    assert parse_header(gap).producer_id == -1
    with pytest.raises(KafkaError):  # Produce takes no such batch
        split_batches(gap, 1 << 20)


def test_a_thinned_batch_is_taken_only_as_a_mirrored_one() -> None:
    batch = bytearray(record_batch([b"a"]))
    struct.pack_into(">i", batch, 23, 4)  # last offset delta 4: offsets 1-4 compacted away
    thinned = bytes(batch)
    # The delta is inside the CRC: recomputed, as the source's cleaner wrote it.
    thinned = thinned[:17] + struct.pack(">I", crc32c(thinned[21:])) + thinned[21:]
    [(header, _)] = split_batches(thinned, 1 << 20, sparse=True)
    assert (header.last_offset_delta, header.records_count) == (4, 1)
    with pytest.raises(KafkaError, match="record count"):
        split_batches(thinned, 1 << 20)
    overfull = bytearray(thinned)
    struct.pack_into(">i", overfull, 57, 6)  # more records than offsets
    overfull[17:21] = struct.pack(">I", crc32c(bytes(overfull[21:])))
    with pytest.raises(KafkaError, match="exceeds the offsets"):
        split_batches(bytes(overfull), 1 << 20, sparse=True)
