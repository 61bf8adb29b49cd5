"""Connection quotas and the request memory budget: the one place connections are counted
and refused, and request bytes are admitted (Kafka's ConnectionQuotas and MemoryPool).

Pure bookkeeping, no I/O: the listener asks before it accepts, each connection asks
before it reads a frame, and both report what they release.
"""

from __future__ import annotations

import ipaddress
import socket
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from contextplane.storage.memory import MemoryBudget


def address_key(host: str) -> str:
    """One spelling per address: IPv4-mapped IPv6 peers count as their IPv4 address."""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def resolve_overrides(overrides: dict[str, int]) -> dict[str, int]:
    """Per-address limits keyed like `address_key`; host names are resolved once, as
    Kafka resolves them when it reads max.connections.per.ip.overrides."""
    resolved: dict[str, int] = {}
    for host, count in overrides.items():
        try:
            ipaddress.ip_address(host)
            addresses = [host]
        except ValueError:
            infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
            addresses = [str(info[4][0]) for info in infos]
        for address in addresses:
            resolved[address_key(address)] = count
    return resolved


class ConnectionQuotas:
    """max.connections (broker-wide: the listener stops accepting at the limit and the
    connection waits in the listen backlog, as in Kafka) and max.connections.per.ip with
    its overrides (an accepted connection beyond them is closed at once, as in Kafka)."""

    def __init__(self, max_connections: int, per_ip: int, per_ip_overrides: dict[str, int]):
        self.max_connections = max_connections
        self._per_ip = per_ip
        self._overrides = resolve_overrides(per_ip_overrides)
        self._counts: dict[str, int] = {}
        self.total = 0

    def slot_available(self) -> bool:
        return self.total < self.max_connections

    def limit_for(self, host: str) -> int:
        return self._overrides.get(address_key(host), self._per_ip)

    def count(self, host: str) -> int:
        return self._counts.get(address_key(host), 0)

    def admit(self, host: str) -> bool:
        """Count a new connection from `host`; False (nothing counted) if the address
        already has its maximum."""
        key = address_key(host)
        count = self._counts.get(key, 0)
        if count >= self._overrides.get(key, self._per_ip):
            return False
        self._counts[key] = count + 1
        self.total += 1
        return True

    def release(self, host: str) -> None:
        key = address_key(host)
        count = self._counts.get(key, 0)
        if count <= 0:
            raise ValueError(f"no connection counted for {host}")
        if count == 1:
            del self._counts[key]
        else:
            self._counts[key] = count - 1
        self.total -= 1


@dataclass(eq=False)
class _Waiter:
    owner: object
    granted: Callable[[], None]
    # The connection has a frame half read: it may need the overdraft to finish it.
    frame_unfinished: bool
    cancelled: bool = field(default=False)


class RequestMemory:
    """queued.max.request.bytes: bytes of requests read but not yet handled, broker-wide.

    Memory is earned by bytes a client actually sends: a connection counts the bytes it
    reads (and a small overhead per frame) until their request has been handled, and
    reads only while the budget has room (`room`), the bytes of one read at a time, so a
    declared frame size takes nothing until its bytes arrive. A slow sender therefore
    holds only what it sent, and whoever else sends is read meanwhile.

    When the budget is spent, a connection that wants to read more waits in line (first
    come, first woken) while it stops reading; released memory wakes waiters in order, and
    a woken connection reads once before it queues again behind the others (round robin).
    So that frames half read when the budget runs out never wait on each other, one
    connection at a time holds the *overdraft*: it may read its unfinished frame to its
    end whatever the budget, until that frame has been handled. The bound can thus be
    passed by one frame of at most socket.request.max.bytes, as Kafka's non-strict memory
    pool passes it. A budget below zero means no bound (Kafka's -1).
    """

    def __init__(self, budget: int, memory: MemoryBudget | None = None) -> None:
        # Within the storage's memory budget: at most its request share, whatever
        # queued.max.request.bytes says, and counted there as it is read.
        if memory is not None:
            budget = memory.request_limit if budget < 0 else min(budget, memory.request_limit)
        self.budget = budget
        self._memory = memory
        self.used = 0
        self.overdraft: object | None = None  # the connection finishing a frame past the budget
        self._waiters: deque[_Waiter] = deque()
        self._waiting = 0
        # Waiters woken per release: about one read each fills the room.
        self.wake_bytes = 256 * 1024

    @property
    def room(self) -> int:
        """Bytes that may still be read before the budget is spent."""
        if self.budget < 0:
            return 1 << 62
        return self.budget - self.used

    @property
    def waiting(self) -> int:
        return self._waiting

    def take(self, size: int) -> None:
        """Count `size` bytes read (they are already in memory)."""
        self.used += size
        if self._memory is not None:
            self._memory.pin_requests(size)
        if self._waiting and self.overdraft is None and self.room <= 0:
            self._progress()

    def release(self, size: int) -> None:
        self.used -= size
        assert self.used >= 0, self.used
        if self._memory is not None:
            self._memory.pin_requests(-size)
        if self._waiting:
            self._progress()

    def wait(self, owner: object, frame_unfinished: bool, granted: Callable[[], None]) -> object:
        """Queue a connection that may not read now; `granted` is called (from another
        connection's release, or from here) once it may read again: for one read, or as
        the overdraft holder. Returns a handle for `cancel`."""
        waiter = _Waiter(owner, granted, frame_unfinished)
        self._waiters.append(waiter)
        self._waiting += 1
        self._progress()
        return waiter

    def cancel(self, handle: object) -> None:
        assert isinstance(handle, _Waiter)
        if not handle.cancelled:
            handle.cancelled = True
            self._waiting -= 1
        while self._waiters and self._waiters[0].cancelled:
            self._waiters.popleft()

    def end_overdraft(self, owner: object) -> None:
        """The overdraft holder's frame has been handled (or it is gone)."""
        if self.overdraft is owner:
            self.overdraft = None
            self._progress()

    def _grant(self, waiter: _Waiter) -> None:
        waiter.cancelled = True
        self._waiting -= 1
        waiter.granted()

    def _progress(self) -> None:
        room = self.room
        if room > 0:
            wake = max(1, -(-room // self.wake_bytes))
            while wake and self._waiters:
                waiter = self._waiters.popleft()
                if not waiter.cancelled:
                    self._grant(waiter)
                    wake -= 1
        elif self.overdraft is None:
            # Everyone who holds the budget may be waiting to finish a frame: let the
            # first of them finish past the budget, so the frames never wait on each other.
            for waiter in self._waiters:
                if not waiter.cancelled and waiter.frame_unfinished:
                    self.overdraft = waiter.owner
                    self._grant(waiter)
                    break
        while self._waiters and self._waiters[0].cancelled:
            self._waiters.popleft()
