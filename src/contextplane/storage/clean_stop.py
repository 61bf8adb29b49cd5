"""A clean stop's storage work: upload what `shutdown.timeout.ms` allows, then leave the
WAL as small as the upload allows.

Everything uploaded: the file WAL's active segment goes too, so the next start replays
(reads and checks) nothing instead of up to a segment of uploaded entries; the object WAL
is emptied within the same deadline down to its marker (`ObjectWal.empty`), not trimmed:
its trim deletes in the background, which the close would cut short. Whatever is not
uploaded stays in the WAL and is uploaded after the next start.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from contextplane.storage.object_wal import ObjectWal

if TYPE_CHECKING:
    from contextplane.storage.engine import StorageEngine

log = logging.getLogger(__name__)


async def upload_and_settle_wal(engine: StorageEngine) -> None:
    timeout_ms = engine.settings.shutdown_timeout_ms
    deadline = asyncio.get_running_loop().time() + timeout_ms / 1000
    try:
        async with asyncio.timeout_at(deadline):  # not wait_for: see uploader.run
            await engine.uploader.drain()
    except TimeoutError:
        log.warning(
            "shutdown: %d un-uploaded bytes stay in the WAL for the next start"
            " (shutdown.timeout.ms=%d)",
            engine.pending_bytes,
            timeout_ms,
        )
    engine.uploader.abandon()
    if isinstance(engine.wal, ObjectWal):
        await _empty_object_wal(engine, engine.wal, deadline)
    else:
        engine.trim_wal(reclaim_active=True)


async def _empty_object_wal(engine: StorageEngine, wal: ObjectWal, deadline: float) -> None:
    """Leave only the object WAL's marker by `deadline` (loop time) when everything is
    uploaded; otherwise, or if the store fails, the objects stay and the next start
    skips what is uploaded."""
    position = engine.uploaded_wal_end()
    if position < wal.end_position:
        return  # the un-uploaded tail stays for the next start
    try:
        async with asyncio.timeout_at(deadline):
            deleted = await wal.empty(position)
    except (TimeoutError, OSError) as exc:
        log.warning(
            "shutdown: the object WAL was not emptied (%s); the next start skips what is uploaded",
            str(exc) or f"shutdown.timeout.ms={engine.settings.shutdown_timeout_ms}",
        )
        return
    if deleted:
        log.info("shutdown: everything uploaded, %d object WAL objects deleted", deleted)
