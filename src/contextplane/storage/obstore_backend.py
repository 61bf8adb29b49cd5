"""Object storage through obstore, chosen by URL: file://, memory://, s3://.

`s3://bucket?endpoint=http://127.0.0.1:8333&region=us-east-1` talks to any S3 API;
credentials come from the usual AWS_* environment variables, and without them requests
are unsigned (SeaweedFS on loopback accepts that).

obstore's LocalStore writes a temporary file and renames it without fsync, and takes one
buffer; so `file://` objects are written by `local_put.py` (writev of the parts, fsync,
rename, directory fsync) before `put` returns: the broker trims its WAL only after an
object is durable. Reads, lists and deletes go through LocalStore.

obstore's own retries are bounded by the request timeout (its default retries for up to 3
minutes); `BoundedObjectStore` (objectstore.py) bounds each whole request on top.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

import obstore
from obstore.exceptions import BaseError as ObstoreError
from obstore.store import LocalStore, MemoryStore, S3Store

from contextplane.storage.local_put import write_parts_durably
from contextplane.storage.objectstore import ObjectInfo, ObjectStoreError


class ObstoreBackend:
    """`ObjectStore` (objectstore.py) on obstore; errors become ObjectStoreError."""

    def __init__(self, url: str, request_timeout_ms: int = 10_000) -> None:
        self.url = url
        parsed = urlparse(url)
        self._local_root: Path | None = None
        if parsed.scheme == "file":
            self._local_root = Path(unquote(parsed.path))
            self._local_root.mkdir(parents=True, exist_ok=True)
            self._store: object = LocalStore(self._local_root, mkdir=True)
        elif parsed.scheme == "memory":
            self._store = MemoryStore()
        elif parsed.scheme == "s3":
            self._store = _s3_store(parsed.netloc, parsed.path, parsed.query, request_timeout_ms)
        else:
            raise ValueError(
                f"object store URL {url!r}: scheme must be file://, memory:// or s3://"
            )

    async def put(self, key: str, parts: Sequence[bytes | memoryview]) -> None:
        if self._local_root is not None:
            # file://: writev of the parts in a worker thread, then fsync (local_put.py).
            path = self._local_root / key
            try:
                await asyncio.get_running_loop().run_in_executor(
                    None, write_parts_durably, path, parts
                )
            except OSError as exc:
                raise ObjectStoreError(f"put {key}: {exc}") from exc
            return
        # One PUT per object: multipart would cost a request per 5 MiB part. obstore
        # gathers the parts into one body in Rust.
        try:
            await obstore.put_async(self._store, key, parts, use_multipart=False)  # type: ignore[arg-type]
        except (ObstoreError, OSError) as exc:
            raise ObjectStoreError(f"put {key}: {exc}") from exc

    async def get_range(self, key: str, start: int, end: int) -> memoryview:
        """Bytes [start, end) of an object, as a view of obstore's buffer (no copy)."""
        try:
            data = await obstore.get_range_async(self._store, key, start=start, end=end)  # type: ignore[arg-type]
        except (ObstoreError, OSError) as exc:
            raise ObjectStoreError(f"get {key} [{start}, {end}): {exc}") from exc
        return memoryview(data)

    async def delete(self, key: str) -> None:
        # Deleting an absent object is not an error: retention may race a topic deletion.
        try:
            with contextlib.suppress(FileNotFoundError):
                await obstore.delete_async(self._store, key)  # type: ignore[arg-type]
        except (ObstoreError, OSError) as exc:
            raise ObjectStoreError(f"delete {key}: {exc}") from exc

    async def delete_many(self, keys: Sequence[str]) -> None:
        if self._local_root is not None:  # a missing file is an error there: one by one
            for key in keys:
                await self.delete(key)
            return
        try:
            await obstore.delete_async(self._store, list(keys))  # type: ignore[arg-type]
        except (ObstoreError, OSError) as exc:
            raise ObjectStoreError(f"delete {len(keys)} objects: {exc}") from exc

    async def list_pages(self, prefix: str, page_keys: int) -> AsyncIterator[list[ObjectInfo]]:
        """obstore's listing stream, `page_keys` keys per chunk (S3 ListObjectsV2 pages)."""
        stream = obstore.list(self._store, prefix, chunk_size=page_keys)  # type: ignore[call-overload]
        try:
            async for chunk in stream:
                yield [
                    ObjectInfo(meta["path"], int(meta["last_modified"].timestamp() * 1000))
                    for meta in chunk
                ]
        except FileNotFoundError:
            return  # nothing was ever written under the prefix
        except (ObstoreError, OSError) as exc:
            raise ObjectStoreError(f"list {prefix}: {exc}") from exc


def _s3_store(bucket: str, path: str, query: str, request_timeout_ms: int) -> S3Store:
    options = {k: v[-1] for k, v in parse_qs(query).items()}
    endpoint = options.pop("endpoint", None)
    region = options.pop("region", "us-east-1")
    has_credentials = "AWS_ACCESS_KEY_ID" in os.environ
    timeout = timedelta(milliseconds=request_timeout_ms)
    client_options: dict[str, object] = {
        "timeout": timeout,
        "connect_timeout": min(timeout, timedelta(seconds=5)),
    }
    if endpoint and endpoint.startswith("http:"):
        client_options["allow_http"] = True
    return S3Store(
        bucket,
        endpoint=endpoint,
        region=region,
        client_options=client_options,  # type: ignore[arg-type]
        retry_config={
            "max_retries": 3,
            "retry_timeout": timeout,
            "backoff": {
                "init_backoff": timedelta(milliseconds=100),
                "max_backoff": timedelta(seconds=2),
                "base": 2,
            },
        },
        skip_signature=not has_credentials,
        prefix=path.strip("/") or None,
    )
