"""Background tasks: the one way a component stops its own."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any


async def cancel_and_wait(task: asyncio.Task[Any] | None) -> None:
    """Cancel `task` (None: nothing runs) and wait until it has ended, so that nothing it
    does can follow the caller's next step."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def repeat_every(
    interval_s: float, job: Callable[[], Awaitable[Any]], what: str, log: logging.Logger
) -> None:
    """Run `job` every `interval_s` until cancelled; a failed round is logged (`what`
    failed) and the next round retries."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            await job()
        except Exception:  # noqa: BLE001 - the next round retries
            log.exception("%s failed", what)
