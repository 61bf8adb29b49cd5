"""The response bytes one connection holds, counted in the memory budget (RFC 0003,
"4. Memory": bytes referenced by responses).

A response's record chunks are views of cached spans and log cache entries: once the
caches evict them, the response still keeps their buffers alive until the transport has
sent it. So a connection counts, as pinned bytes of the budget, every response body it
holds waiting for its turn to be written and whatever its transport has not sent yet
(`get_write_buffer_size`). The transport says nothing when its buffer drains below the
high-water mark, so the count is brought up to date whenever the connection looks:
before and after each write, on `resume_writing`, on the listener's periodic deadline
check, and to zero on `connection_lost`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from contextplane import limits
from contextplane.storage.memory import MemoryBudget

Part = bytes | bytearray | memoryview


def parts_size(parts: Sequence[Part]) -> int:
    return sum(len(part) for part in parts)


class HeldResponses:
    def __init__(self, budget: MemoryBudget | None) -> None:
        self._budget = budget  # None: nothing is counted (a listener without storage)
        self._waiting = 0  # bodies taken from handlers, not yet given to the transport
        self._counted = 0  # what the budget holds for this connection now
        self._closed = False
        # Set while the connection holds at most HELD_RESPONSE_BYTES_BEFORE_NEXT_REQUEST
        # (its next request may start), cleared above it.
        self.few = asyncio.Event()
        self.few.set()

    @property
    def counted_bytes(self) -> int:
        return self._counted

    def hold(self, size: int, buffered: int) -> None:
        """A response body of `size` bytes is waiting to be written."""
        if self._closed:
            return
        self._waiting += size
        self.sync(buffered)

    def written(self, size: int, buffered: int) -> None:
        """The held body of `size` bytes went to the transport, which now buffers
        `buffered` bytes (that body's unsent part among them)."""
        self._waiting = max(0, self._waiting - size)
        self.sync(buffered)

    def sync(self, buffered: int) -> None:
        """Bring the budget up to date with the transport's unsent bytes."""
        if self._closed or self._budget is None:
            return
        held = self._waiting + buffered
        delta = held - self._counted
        if delta:
            self._counted = held
            self._budget.pin_responses(delta)
        if held > limits.HELD_RESPONSE_BYTES_BEFORE_NEXT_REQUEST:
            self.few.clear()
        else:
            self.few.set()

    def release_all(self) -> None:
        """The connection is gone: nothing it held is counted any more."""
        if self._budget is not None and self._counted:
            self._budget.pin_responses(-self._counted)
        self._counted = self._waiting = 0
        self._closed = True
        self.few.set()
