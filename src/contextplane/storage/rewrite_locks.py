"""`StreamRewriteLocks`: the log cleaner and object compaction never rewrite the same
stream's ranges at once. Each holds a stream's lock while it reads, PUTs and swaps that
stream's ranges; the lock exists only while someone holds or waits for it
(tasks.KeyedLocks). Compaction holds several streams' locks, taken in stream order so two
holders of many never wait on each other in a cycle. Losing a race with retention or
DeleteRecords (which take no lock) is left to the swaps' checks."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable

from contextplane.tasks import KeyedLocks


class StreamRewriteLocks:
    def __init__(self) -> None:
        self._locks = KeyedLocks()

    def __len__(self) -> int:
        return len(self._locks)

    def hold(self, stream_id: int) -> contextlib.AbstractAsyncContextManager[None]:
        return self._locks.hold(stream_id)

    @contextlib.asynccontextmanager
    async def hold_all(self, stream_ids: Iterable[int]) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            for stream_id in sorted(set(stream_ids)):
                await stack.enter_async_context(self._locks.hold(stream_id))
            yield
