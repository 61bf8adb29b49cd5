"""Background tasks: the one way a component stops its own; and locks per key."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from typing import Any

from contextplane.errors import DependencyUnavailable


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
        except Exception as exc:  # noqa: BLE001 - the next round retries
            log_round_failure(log, what, exc)


def log_round_failure(log: logging.Logger, what: str, exc: BaseException) -> None:
    """Log a failed round of a background job (call it from an `except` block): an
    outage of a service the broker depends on is one line, since its message says all
    and a traceback per round would bury the log; anything else with its traceback."""
    if isinstance(exc, DependencyUnavailable):
        log.warning("%s failed: %s", what, exc)
    else:
        log.exception("%s failed", what)


class KeyedLocks:
    """One asyncio lock per key, held only while someone holds or waits for it: a client
    that names a million keys (transactional ids, say) leaves no lock behind."""

    def __init__(self) -> None:
        self._locks: dict[Hashable, tuple[asyncio.Lock, list[int]]] = {}

    def __len__(self) -> int:
        return len(self._locks)

    @contextlib.asynccontextmanager
    async def hold(self, key: Hashable) -> AsyncIterator[None]:
        entry = self._locks.get(key)
        if entry is None:
            entry = self._locks[key] = (asyncio.Lock(), [0])
        lock, users = entry
        users[0] += 1
        try:
            async with lock:
                yield
        finally:
            users[0] -= 1
            if users[0] == 0:
                del self._locks[key]
