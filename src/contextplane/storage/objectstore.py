"""Object storage as the storage engine sees it: put, ranged get, delete.

Two stores ship: `ObstoreBackend` (obstore_backend.py: file://, memory://, s3://) and
`MemoryObjectStore` (memory_objects.py: for tests and the simulation, with injectable
faults). Both are used through `BoundedObjectStore`, which gives every request its bound:

* each request, retries included, is bounded by `object.store.request.timeout.ms`, so
  against an unreachable store a read fails with ObjectStoreError in bounded time and the
  caller answers KAFKA_STORAGE_ERROR;
* after a read timed out, reads fail at once for a short while, so a fetch of many
  partitions that all need the store answers within one bound rather than one per
  partition.

It also records how long recent GETs took (`get_latency`): read-ahead reads as far ahead
as a consumer gets in two p99 GET latencies.

The contract every store keeps: `put` returns only once the object is durable (the
broker trims its WAL after that); deleting an absent object is not an error; a listing
comes in pages of at most the asked number of keys, in no particular order; every
failure is an ObjectStoreError.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from contextplane.clock import Clock, SystemClock
from contextplane.tracing import child_span

_T = TypeVar("_T")

# After a read timed out, further reads fail at once for this long.
READS_FAIL_FAST_MS = 1_000


class ObjectStoreError(OSError):
    """Any failure of the object store (outage, missing object, denied request)."""

    timed_out = False


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """One listed object: its key and when the store last wrote it (the store's clock)."""

    key: str
    modified_ms: int


class GetLatency:
    """The durations of the last GETs that succeeded, and their p99."""

    SAMPLES = 512

    def __init__(self) -> None:
        self._samples: deque[int] = deque(maxlen=self.SAMPLES)
        self._p99_ms: int | None = 0  # None: to recompute

    def record(self, ms: int) -> None:
        self._samples.append(ms)
        self._p99_ms = None

    def p99_ms(self) -> int:
        """The 99th percentile of the recorded durations (0 before any)."""
        if self._p99_ms is None:
            ordered = sorted(self._samples)
            self._p99_ms = ordered[min(len(ordered) - 1, len(ordered) * 99 // 100)]
        return self._p99_ms


class ObjectStore(Protocol):
    async def put(self, key: str, parts: Sequence[bytes | memoryview]) -> None:
        """Store the object made of `parts` (written in order, never joined by the caller)
        with one PUT; returns once it is durable."""
        ...

    async def get_range(self, key: str, start: int, end: int) -> memoryview:
        """Bytes [start, end) of an object."""
        ...

    async def delete(self, key: str) -> None:
        """Delete an object; an absent one is not an error."""
        ...

    async def delete_many(self, keys: Sequence[str]) -> None:
        """Delete objects, as few requests as the store allows (S3: DeleteObjects, up to
        1,000 keys each); absent ones are not an error. On failure some may be gone."""
        ...

    def list_pages(self, prefix: str, page_keys: int) -> AsyncIterator[list[ObjectInfo]]:
        """Every object under `prefix`, in pages of at most `page_keys`."""
        ...


class BoundedObjectStore:
    """An `ObjectStore` whose every request is bounded in time (see the module doc)."""

    def __init__(
        self, store: ObjectStore, request_timeout_ms: int, clock: Clock | None = None
    ) -> None:
        self.store = store
        self._timeout_s = request_timeout_ms / 1000
        self._clock = clock or SystemClock()
        self._reads_fail_until_ms = -1
        # Requests (and bytes) since start: logged at a clean stop, read by the bench.
        self.puts = 0
        self.put_bytes = 0
        self.gets = 0
        self.get_bytes = 0
        self.deletes = 0
        self.get_latency = GetLatency()

    async def _bounded(self, what: str, operation: Awaitable[_T]) -> _T:
        try:
            # Not wait_for: on Python 3.11 a cancellation of the caller that arrives as
            # the request completes is dropped, and the caller (the uploader at close)
            # carries on as if never cancelled.
            async with asyncio.timeout(self._timeout_s):
                return await operation
        except TimeoutError:
            error = ObjectStoreError(
                f"{what}: no answer from the object store within {self._timeout_s:g} s"
            )
            error.timed_out = True
            raise error from None
        except ObjectStoreError:
            raise
        except OSError as exc:
            raise ObjectStoreError(f"{what}: {exc}") from exc

    async def put(self, key: str, parts: Sequence[bytes | memoryview]) -> None:
        await self._bounded(f"put {key}", self.store.put(key, parts))
        self.puts += 1
        self.put_bytes += sum(len(part) for part in parts)

    async def get_range(self, key: str, start: int, end: int) -> memoryview:
        what = f"get {key} [{start}, {end})"
        if self._clock.monotonic_ms() < self._reads_fail_until_ms:
            raise ObjectStoreError(f"{what}: the object store did not answer a read just now")
        started_ms = self._clock.monotonic_ms()
        try:
            # A span under the fetch that asked, when it is traced (nothing otherwise).
            with child_span("object get", {"contextplane.object.bytes": end - start}):
                data = await self._bounded(what, self.store.get_range(key, start, end))
        except ObjectStoreError as exc:
            if exc.timed_out:
                self._reads_fail_until_ms = self._clock.monotonic_ms() + READS_FAIL_FAST_MS
            raise
        self.get_latency.record(self._clock.monotonic_ms() - started_ms)
        self.gets += 1
        self.get_bytes += len(data)
        return data

    async def delete(self, key: str) -> None:
        await self._bounded(f"delete {key}", self.store.delete(key))
        self.deletes += 1

    async def delete_many(self, keys: Sequence[str]) -> None:
        await self._bounded(f"delete {len(keys)} objects", self.store.delete_many(keys))
        self.deletes += len(keys)

    async def list_pages(self, prefix: str, page_keys: int) -> AsyncIterator[list[ObjectInfo]]:
        """The store's listing, each page bounded in time like any request."""
        pages = aiter(self.store.list_pages(prefix, page_keys))
        while True:
            try:
                page = await self._bounded(f"list {prefix}", anext(pages))
            except StopAsyncIteration:
                return
            yield page


def open_object_store(
    url: str, request_timeout_ms: int, clock: Clock | None = None
) -> BoundedObjectStore:
    """The store an `object.store.url` names, bounded by `request_timeout_ms`."""
    # Imported here: obstore is loaded only by a broker that names a URL.
    from contextplane.storage.obstore_backend import ObstoreBackend

    return BoundedObjectStore(ObstoreBackend(url, request_timeout_ms), request_timeout_ms, clock)
