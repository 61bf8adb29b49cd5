"""Deliberately broken engine variants: the checkers must catch each of them.

A checker that passes every seed proves nothing until it has failed on a broken engine;
each variant here breaks one guarantee the way a plausible bug would.
"""

from __future__ import annotations

import asyncio

from contextplane.storage.memory_wal import MemoryWal


class AckBeforeSyncWal(MemoryWal):
    """Says an entry is durable as soon as it is queued, before it is written or synced
    (as a WAL with fsync forgotten would): appends are acknowledged and become visible
    before they can survive a crash."""

    def append(
        self, stream_id: int, base_offset: int, batch: bytes
    ) -> tuple[int, asyncio.Future[None]]:
        position, durable = super().append(stream_id, base_offset, batch)
        durable.set_result(None)
        return position, durable


class SpinningWal(MemoryWal):
    """Starts, with its first append, a task that yields forever without letting virtual
    time pass (as a retry loop with no back-off would): the run can never finish, and
    its iteration budget must stop it and say where it spins."""

    def append(
        self, stream_id: int, base_offset: int, batch: bytes
    ) -> tuple[int, asyncio.Future[None]]:
        if not getattr(self, "_spinning", None):
            self._spinning = asyncio.get_running_loop().create_task(_spin_forever(), name="spinner")
        return super().append(stream_id, base_offset, batch)


async def _spin_forever() -> None:
    while True:
        await asyncio.sleep(0)
