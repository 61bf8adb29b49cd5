"""The object store's cluster marker against a hostile or messy `cluster/` prefix: keys
that sort before the marker, thousands of them, a folder where the marker goes, other
clusters' names made of control characters. Each start either goes on (the store is this
cluster's) or is refused with a message that says what was found, never on a guess from
the prefix's first few keys."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from contextplane.metadata.store import MetadataStore
from contextplane.settings import Settings
from contextplane.storage.memory_objects import MemoryObjectStore, ObjectBucket
from contextplane.storage.obstore_backend import ObstoreBackend
from contextplane.storage.store_marker import (
    MARKER_PREFIX,
    ObjectStoreMismatch,
    check_store_marker,
)
from tests.support.metadata import open_store

Scenario = Callable[[MetadataStore, str], Awaitable[None]]


def run(tmp_path: Path, scenario: Scenario) -> None:
    async def main() -> None:
        metadata = await open_store(Settings(data_dir=tmp_path / "data"))
        try:
            await scenario(metadata, await metadata.cluster_id())
        finally:
            await metadata.close()

    asyncio.run(main())


def junk_bucket(keys: int, *extra: str) -> ObjectBucket:
    """`keys` keys nested under `cluster/!junk/` ('!' sorts before any cluster id)."""
    bucket = ObjectBucket()
    for i in range(keys):
        bucket.objects[f"{MARKER_PREFIX}!junk/{i:05d}"] = b"x"
    for key in extra:
        bucket.objects[key] = b""
    return bucket


def test_the_marker_is_found_behind_thousands_of_junk_keys(tmp_path: Path) -> None:
    async def scenario(metadata: MetadataStore, cluster_id: str) -> None:
        bucket = junk_bucket(3_000, MARKER_PREFIX + cluster_id)
        await check_store_marker(MemoryObjectStore(bucket), metadata, cluster_id, "mem://a")
        assert len(bucket.objects) == 3_001

    run(tmp_path, scenario)


def test_nested_junk_is_no_other_clusters_marker(tmp_path: Path) -> None:
    async def scenario(metadata: MetadataStore, cluster_id: str) -> None:
        bucket = junk_bucket(20)
        await check_store_marker(MemoryObjectStore(bucket), metadata, cluster_id, "mem://b")
        assert MARKER_PREFIX + cluster_id in bucket.objects  # marked

    run(tmp_path, scenario)


def test_a_prefix_past_the_bound_without_the_marker_is_refused(tmp_path: Path) -> None:
    async def scenario(metadata: MetadataStore, cluster_id: str) -> None:
        bucket = junk_bucket(10_500)
        with pytest.raises(ObjectStoreMismatch, match=r"more than 10,000 keys under cluster/"):
            await check_store_marker(MemoryObjectStore(bucket), metadata, cluster_id, "mem://c")
        assert MARKER_PREFIX + cluster_id not in bucket.objects

    run(tmp_path, scenario)


def test_other_clusters_are_named_escaped_and_bounded(tmp_path: Path) -> None:
    async def scenario(metadata: MetadataStore, cluster_id: str) -> None:
        others = [f"{MARKER_PREFIX}other-{i}" for i in range(6)]
        bucket = junk_bucket(0, *others, f"{MARKER_PREFIX}evil\n\x1b[2Jcluster")
        with pytest.raises(ObjectStoreMismatch) as refused:
            await check_store_marker(MemoryObjectStore(bucket), metadata, cluster_id, "mem://d")
        message = str(refused.value)
        assert "belongs to cluster evil\\n\\x1b[2Jcluster, other-0, other-1, other-2" in message
        assert "and 2 more" in message
        assert "\n" not in message and "\x1b" not in message

    run(tmp_path, scenario)


def test_a_folder_where_the_marker_goes_is_refused(tmp_path: Path) -> None:
    store_dir = tmp_path / "store"

    async def scenario(metadata: MetadataStore, cluster_id: str) -> None:
        folder = store_dir / "cluster" / cluster_id
        folder.mkdir(parents=True)
        (folder / "stray").write_bytes(b"x")
        objects = ObstoreBackend(store_dir.as_uri())
        with pytest.raises(ObjectStoreMismatch, match=r"holds a folder cluster/.*/ where"):
            await check_store_marker(objects, metadata, cluster_id, store_dir.as_uri())

    run(tmp_path, scenario)


def test_an_empty_folder_where_the_marker_goes_is_refused(tmp_path: Path) -> None:
    store_dir = tmp_path / "store"

    async def scenario(metadata: MetadataStore, cluster_id: str) -> None:
        (store_dir / "cluster" / cluster_id).mkdir(parents=True)
        objects = ObstoreBackend(store_dir.as_uri())
        with pytest.raises(ObjectStoreMismatch, match=r"holds a folder cluster/.*/ where"):
            await check_store_marker(objects, metadata, cluster_id, store_dir.as_uri())
        assert not list(store_dir.rglob("*.part"))  # the attempted put left nothing

    run(tmp_path, scenario)
