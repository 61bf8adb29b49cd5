"""Multi-partition objects are self-describing: the footer's index matches what was built."""

from __future__ import annotations

from contextplane.storage.object_format import StreamChunk, build_object, object_key, read_index


def test_index_in_the_footer_matches_the_built_ranges() -> None:
    chunks = [
        StreamChunk(7, 0, 3, 1000, [b"a" * 10, b"b" * 5]),
        StreamChunk(9, 40, 41, 2000, [b"c" * 7]),
    ]
    parts, index = build_object(chunks)
    data = b"".join(parts)
    assert read_index(data) == index
    assert [(e.stream_id, e.position, e.size) for e in index] == [(7, 0, 15), (9, 15, 7)]
    assert data[index[1].position : index[1].position + index[1].size] == b"c" * 7


def test_keys_are_unique_and_spread_by_a_hash_prefix() -> None:
    first, second = object_key(1, 1), object_key(1, 2)
    assert first != second and first.split("/")[1] != second.split("/")[1]
