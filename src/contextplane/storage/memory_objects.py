"""An object store in memory, for tests and the deterministic simulation.

`MemoryObjectStore` keeps the `ObjectStore` contract (objectstore.py) over an
`ObjectBucket`. Each request takes `latency_ms` (an asyncio sleep, so virtual time in the
simulation). Faults are plain attributes, set by the test:

* `failing`: the operations ("put", "get", "delete", "list") that fail at once, as against an
  unreachable store;
* `lose_put_replies`: a put stores the object and then fails, as when the reply is lost
  (the broker is left with an object nothing references);
* `stall()` / `resume()`: requests hang until resumed (`BoundedObjectStore` times them
  out); a put stalls after its object landed and before it is durable;
* `stall_gets(key)` / `resume_gets(key)`: GETs of one object hang until resumed, the
  others run (`get_requests` lists every GET asked for, in order).

An object is durable once its put returned. A crash is `ObjectBucket.crash(keep)`:
objects whose put had not returned survive only if `keep(key)` says so, and every store
opened before the crash stops touching the bucket.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence

from contextplane.clock import Clock, SystemClock
from contextplane.storage.objectstore import ObjectInfo, ObjectStoreError


class ObjectBucket:
    """What survives a crash: the objects, and which of them are not yet durable."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.modified_ms: dict[str, int] = {}  # when each object landed
        self.unsynced: set[str] = set()  # landed, but their put has not returned
        self.generation = 0

    def crash(self, keep: Callable[[str], bool] = lambda key: False) -> None:
        for key in sorted(self.unsynced):
            if not keep(key):
                del self.objects[key]
                self.modified_ms.pop(key, None)
        self.unsynced.clear()
        self.generation += 1


class MemoryObjectStore:
    def __init__(
        self,
        bucket: ObjectBucket | None = None,
        latency_ms: float = 0,
        clock: Clock | None = None,
    ) -> None:
        self.bucket = bucket if bucket is not None else ObjectBucket()
        self.clock = clock or SystemClock()
        self.latency_ms = latency_ms
        self.failing: set[str] = set()
        self.lose_put_replies = False
        self._generation = self.bucket.generation
        self._running = asyncio.Event()
        self._running.set()
        self.put_sizes: list[int] = []  # of every put that returned
        self.get_requests: list[tuple[str, int, int]] = []  # (key, start, end) of every GET
        self._stalled_gets: dict[str, asyncio.Event] = {}

    def stall(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    def stall_gets(self, key: str) -> None:
        self._stalled_gets.setdefault(key, asyncio.Event())

    def resume_gets(self, key: str) -> None:
        event = self._stalled_gets.pop(key, None)
        if event is not None:
            event.set()

    @property
    def alive(self) -> bool:
        """False once the bucket crashed: this store's process is gone."""
        return self.bucket.generation == self._generation

    async def _request(self, operation: str, what: str) -> None:
        if operation in self.failing:
            raise ObjectStoreError(f"{what}: connection refused (injected)")
        if self.latency_ms:
            await asyncio.sleep(self.latency_ms / 1000)
        await self._running.wait()
        if not self.alive:
            raise ObjectStoreError(f"{what}: this process crashed")

    async def put(self, key: str, parts: Sequence[bytes | memoryview]) -> None:
        await self._request("put", f"put {key}")
        bucket = self.bucket
        data = b"".join(parts)
        bucket.objects[key] = data
        bucket.modified_ms[key] = self.clock.wall_ms()
        bucket.unsynced.add(key)
        await self._request("put", f"put {key}")  # landed; durable once this returns
        if self.lose_put_replies:
            raise ObjectStoreError(f"put {key}: the reply was lost (injected)")
        bucket.unsynced.discard(key)
        self.put_sizes.append(len(data))

    async def get_range(self, key: str, start: int, end: int) -> memoryview:
        what = f"get {key} [{start}, {end})"
        self.get_requests.append((key, start, end))
        await self._request("get", what)
        stalled = self._stalled_gets.get(key)
        if stalled is not None:
            await stalled.wait()
        data = self.bucket.objects.get(key)
        if data is None:
            raise ObjectStoreError(f"{what}: no such object")
        if not 0 <= start <= end <= len(data):
            raise ObjectStoreError(f"{what}: the object has {len(data)} bytes")
        return memoryview(data)[start:end]

    async def delete(self, key: str) -> None:
        await self._request("delete", f"delete {key}")
        self.bucket.objects.pop(key, None)
        self.bucket.modified_ms.pop(key, None)
        self.bucket.unsynced.discard(key)

    async def delete_many(self, keys: Sequence[str]) -> None:
        await self._request("delete", f"delete {len(keys)} objects")
        for key in keys:
            self.bucket.objects.pop(key, None)
            self.bucket.modified_ms.pop(key, None)
            self.bucket.unsynced.discard(key)

    async def list_pages(self, prefix: str, page_keys: int) -> AsyncIterator[list[ObjectInfo]]:
        await self._request("list", f"list {prefix}")
        bucket = self.bucket
        keys = sorted(k for k in bucket.objects if k.startswith(prefix))
        for start in range(0, len(keys), page_keys):
            yield [
                ObjectInfo(k, bucket.modified_ms.get(k, 0))
                for k in keys[start : start + page_keys]
                if k in bucket.objects
            ]
            await self._request("list", f"list {prefix}")
