"""Waiting on a condition with a deadline: the one way tests wait for something to happen."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

POLL_S = 0.05


def wait_until(
    condition: Callable[[], T], timeout_s: float, what: str, poll_s: float = POLL_S
) -> T:
    """Poll `condition` until it returns something truthy, and return that; fail naming
    `what` after `timeout_s` (a liveness bound, not a performance claim)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s}s: {what}")
        time.sleep(poll_s)


async def wait_until_async(
    condition: Callable[[], T], timeout_s: float, what: str, poll_s: float = 0.01
) -> T:
    """`wait_until` for a test running on an event loop: yields to it between polls."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s}s: {what}")
        await asyncio.sleep(poll_s)
