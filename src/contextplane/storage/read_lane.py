"""The read lane: how many fetches that read from objects are planned and assembled at
once (RFC 0003, 2e).

The GETs themselves cost the event loop nothing while they are in flight (obstore's
threads), but planning a catch-up fetch and slicing its batches out of spans is loop
time, O(partitions). A fetch that needs objects holds one of
`object.read.fetch.concurrency` slots for that work, so however many consumers replay at
once, the loop time their responses take is bounded; tail fetches answered from the log
cache never take a slot, so they do not queue behind catch-up. Holding a slot, a fetch
still starts its work only at a turn of the loop governor (loop_governor.py): once no
request waits for the loop, so the live path's requests go first.
"""

from __future__ import annotations

import asyncio
from types import TracebackType

from contextplane import limits
from contextplane.loop_governor import LoopGovernor


class ReadLane:
    def __init__(
        self,
        slots: int = limits.OBJECT_READ_FETCH_CONCURRENCY,
        governor: LoopGovernor | None = None,
    ) -> None:
        self._slots = asyncio.Semaphore(slots)
        self.governor = governor or LoopGovernor()
        self.slots = slots
        self.busy = 0  # fetches holding a slot
        self.waiting = 0  # fetches waiting for one

    async def __aenter__(self) -> None:
        self.waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self.waiting -= 1
        self.busy += 1
        try:
            await self.governor.turn()
        except BaseException:
            self.busy -= 1
            self._slots.release()
            raise

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.busy -= 1
        self._slots.release()
