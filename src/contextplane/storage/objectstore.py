"""Object storage behind obstore, chosen by URL: file://, memory://, s3://.

`s3://bucket?endpoint=http://127.0.0.1:8333&region=us-east-1` talks to any S3 API;
credentials come from the usual AWS_* environment variables, and without them requests
are unsigned (SeaweedFS on loopback accepts that).

obstore's LocalStore writes a temporary file and renames it without fsync, so for
`file://` this module fsyncs the object and its directory before `put` returns: the
broker trims its WAL only after an object is durable.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

import obstore
from obstore.exceptions import BaseError as ObstoreError
from obstore.store import LocalStore, MemoryStore, S3Store


class ObjectStoreError(OSError):
    """Any failure of the object store (outage, missing object, denied request)."""


class ObjectStore:
    def __init__(self, url: str) -> None:
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
            options = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
            endpoint = options.pop("endpoint", None)
            region = options.pop("region", "us-east-1")
            has_credentials = "AWS_ACCESS_KEY_ID" in os.environ
            client_options = (
                {"allow_http": True} if endpoint and endpoint.startswith("http:") else {}
            )
            self._store = S3Store(
                parsed.netloc,
                endpoint=endpoint,
                region=region,
                client_options=client_options,
                skip_signature=not has_credentials,
                prefix=parsed.path.strip("/") or None,
            )
        else:
            raise ValueError(
                f"object store URL {url!r}: scheme must be file://, memory:// or s3://"
            )
        self.puts = 0
        self.gets = 0
        self.deletes = 0
        self.bytes_put = 0
        self.bytes_got = 0

    async def put(self, key: str, data: bytes) -> None:
        try:
            # One PUT per object: multipart would cost a request per 5 MiB part.
            await obstore.put_async(self._store, key, data, use_multipart=False)  # type: ignore[arg-type]
        except (ObstoreError, OSError) as exc:
            raise ObjectStoreError(f"put {key}: {exc}") from exc
        self.puts += 1
        self.bytes_put += len(data)
        if self._local_root is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._fsync_local, key)

    def _fsync_local(self, key: str) -> None:
        assert self._local_root is not None
        path = self._local_root / key
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    async def get_range(self, key: str, start: int, end: int) -> memoryview:
        """Bytes [start, end) of an object, as a view of obstore's buffer (no copy)."""
        try:
            data = await obstore.get_range_async(self._store, key, start=start, end=end)  # type: ignore[arg-type]
        except (ObstoreError, OSError) as exc:
            raise ObjectStoreError(f"get {key} [{start}, {end}): {exc}") from exc
        self.gets += 1
        self.bytes_got += end - start
        return memoryview(data)

    async def delete(self, key: str) -> None:
        # Deleting an absent object is not an error: retention may race a topic deletion.
        with contextlib.suppress(FileNotFoundError):
            await obstore.delete_async(self._store, key)  # type: ignore[arg-type]
        self.deletes += 1
