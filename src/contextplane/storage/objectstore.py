"""Object storage behind obstore, chosen by URL: file://, memory://, s3://.

`s3://bucket?endpoint=http://127.0.0.1:8333&region=us-east-1` talks to any S3 API;
credentials come from the usual AWS_* environment variables, and without them requests
are unsigned (SeaweedFS on loopback accepts that).

obstore's LocalStore writes a temporary file and renames it without fsync, so for
`file://` this module fsyncs the object and its directory before `put` returns: the
broker trims its WAL only after an object is durable.

Every request is bounded by `request_timeout_ms`, retries included (obstore's own default
retries for up to 3 minutes): against an unreachable store a read fails with
ObjectStoreError in bounded time, and the caller answers KAFKA_STORAGE_ERROR. After a
read timed out, reads fail at once for a short while, so a fetch of many partitions
that all need the store answers within one bound rather than one per partition.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable
from datetime import timedelta
from pathlib import Path
from typing import TypeVar
from urllib.parse import parse_qs, unquote, urlparse

import obstore
from obstore.exceptions import BaseError as ObstoreError
from obstore.store import LocalStore, MemoryStore, S3Store

_T = TypeVar("_T")


class ObjectStoreError(OSError):
    """Any failure of the object store (outage, missing object, denied request)."""

    timed_out = False


# After a read timed out, further reads fail at once for this long.
_READS_FAIL_FAST_S = 1.0


class ObjectStore:
    def __init__(self, url: str, request_timeout_ms: int = 10_000) -> None:
        self.url = url
        self._timeout_s = request_timeout_ms / 1000
        self._reads_fail_until = 0.0
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
            timeout = timedelta(milliseconds=request_timeout_ms)
            client_options: dict[str, object] = {
                "timeout": timeout,
                "connect_timeout": min(timeout, timedelta(seconds=5)),
            }
            if endpoint and endpoint.startswith("http:"):
                client_options["allow_http"] = True
            self._store = S3Store(
                parsed.netloc,
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

    async def _bounded(self, what: str, operation: Awaitable[_T]) -> _T:
        try:
            return await asyncio.wait_for(operation, self._timeout_s)
        except TimeoutError:
            error = ObjectStoreError(
                f"{what}: no answer from the object store within {self._timeout_s:g} s"
            )
            error.timed_out = True
            raise error from None
        except (ObstoreError, OSError) as exc:
            raise ObjectStoreError(f"{what}: {exc}") from exc

    async def put(self, key: str, data: bytes) -> None:
        # One PUT per object: multipart would cost a request per 5 MiB part.
        put = obstore.put_async(self._store, key, data, use_multipart=False)  # type: ignore[arg-type]
        await self._bounded(f"put {key}", put)
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
        what = f"get {key} [{start}, {end})"
        loop = asyncio.get_running_loop()
        if loop.time() < self._reads_fail_until:
            raise ObjectStoreError(f"{what}: the object store did not answer a read just now")
        get = obstore.get_range_async(self._store, key, start=start, end=end)  # type: ignore[arg-type]
        try:
            data = await self._bounded(what, get)
        except ObjectStoreError as exc:
            if exc.timed_out:
                self._reads_fail_until = loop.time() + _READS_FAIL_FAST_S
            raise
        self.gets += 1
        self.bytes_got += end - start
        return memoryview(data)

    async def delete(self, key: str) -> None:
        # Deleting an absent object is not an error: retention may race a topic deletion.
        await self._bounded(f"delete {key}", self._delete_if_present(key))
        self.deletes += 1

    async def _delete_if_present(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            await obstore.delete_async(self._store, key)  # type: ignore[arg-type]
