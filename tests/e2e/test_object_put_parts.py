"""An object built as parts (`build_object` joins nothing) is stored by one PUT and reads
back byte for byte: on s3:// (SeaweedFS behind the counting proxy) and on file:// (writev
of the parts, fsync, rename: no temporary file is left)."""

from __future__ import annotations

import asyncio
import os
import tracemalloc
from pathlib import Path

from contextplane.storage.object_format import StreamChunk, build_object, read_index
from contextplane.storage.obstore_backend import ObstoreBackend
from tests.support.s3proxy import S3CountingProxy
from tests.support.seaweedfs import REGION, SeaweedFS, seaweedfs_fixture  # noqa: F401 - fixture


def _chunks(streams: int, batches: int) -> list[StreamChunk]:
    """More buffers than one writev takes (1,024), of varied sizes, some of them views."""
    chunks = []
    for stream in range(streams):
        data = [os.urandom(1 + (stream * 37 + i * 11) % 700) for i in range(batches)]
        views: list[bytes | memoryview] = [
            memoryview(b) if i % 2 else b for i, b in enumerate(data)
        ]
        chunks.append(StreamChunk(stream, 0, batches, 1000, views))
    return chunks


async def _put_and_read(store: ObstoreBackend, key: str) -> tuple[bytes, bytes]:
    chunks = _chunks(streams=3, batches=500)
    parts, index = build_object(chunks)
    assert isinstance(parts, list) and len(parts) > 1024
    assert parts[1] is chunks[0].batches[1]  # the batches themselves, not a copy
    expected = b"".join(parts)
    await store.put(key, parts)
    stored = bytes(await store.get_range(key, 0, len(expected)))
    assert read_index(stored) == index
    return expected, stored


def test_an_object_from_parts_is_one_put_on_s3(seaweedfs: SeaweedFS, tmp_path: Path) -> None:
    proxy = S3CountingProxy(seaweedfs.endpoint, tmp_path / "s3proxy.log")
    try:
        url = f"s3://{seaweedfs.bucket}/put-parts?endpoint={proxy.endpoint}&region={REGION}"
        before = proxy.counts()
        expected, stored = asyncio.run(_put_and_read(ObstoreBackend(url), "objects/a.obj"))
        after = proxy.counts()
    finally:
        proxy.stop()
    assert stored == expected
    requests = {kind: after[kind] - before.get(kind, 0) for kind in after}
    assert requests["PUT"] == 1 and requests["PUT_bytes"] == len(expected), requests
    assert not any(n for kind, n in requests.items() if kind.startswith(("POST", "PUT_PART")))


def test_an_object_from_parts_is_written_whole_on_file(tmp_path: Path) -> None:
    store = ObstoreBackend(f"file://{tmp_path}")
    expected, stored = asyncio.run(_put_and_read(store, "objects/ab/1-1.obj"))
    assert stored == expected
    assert sorted(p.name for p in (tmp_path / "objects" / "ab").iterdir()) == ["1-1.obj"]


def test_building_and_writing_an_object_copies_none_of_it(tmp_path: Path) -> None:
    """The file:// path never holds the object in one buffer: the Python heap grows by far
    less than the object while it is built and written (writev of the batches)."""
    store = ObstoreBackend(f"file://{tmp_path}")
    chunks = _chunks(streams=8, batches=2000)  # ~5.6 MB of batches
    size = sum(len(b) for c in chunks for b in c.batches)

    async def build_and_put() -> None:
        parts, _ = build_object(chunks)
        await store.put("objects/cd/1-2.obj", parts)

    tracemalloc.start()
    try:
        asyncio.run(build_and_put())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < size / 4, (peak, size)
    assert (tmp_path / "objects" / "cd" / "1-2.obj").stat().st_size > size
