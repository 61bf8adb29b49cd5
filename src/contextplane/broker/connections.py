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
    size: int
    granted: Callable[[], None]
    cancelled: bool = field(default=False)


class RequestMemory:
    """queued.max.request.bytes: bytes of requests read but not yet handled, broker-wide.

    A frame is admitted when its size prefix has arrived, and its declared size is
    counted from then until it has been handled. Like Kafka's (non-strict) memory pool,
    a frame is admitted while any budget is left, so the bound can be passed by one frame
    of at most socket.request.max.bytes; an admitted frame is read to its end, so two
    half-read large frames never wait on each other. A frame that cannot be admitted
    waits in line (first come, first admitted) while its connection stops reading.
    A budget below zero means no bound (Kafka's -1).
    """

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.used = 0
        self._waiters: deque[_Waiter] = deque()

    def available(self) -> bool:
        return self.budget < 0 or self.used < self.budget

    def reserve(self, size: int, force: bool = False) -> bool:
        """Admit a frame of `size` bytes now if the budget allows (or `force`)."""
        self._drop_cancelled()
        if not force and (self._waiters or not self.available()):
            return False
        self.used += size
        return True

    def wait(self, size: int, granted: Callable[[], None]) -> object:
        """Queue a frame that `reserve` refused; `granted` is called once it is admitted
        (its size already counted). Returns a handle for `cancel`."""
        waiter = _Waiter(size, granted)
        self._waiters.append(waiter)
        return waiter

    def cancel(self, handle: object) -> None:
        assert isinstance(handle, _Waiter)
        handle.cancelled = True
        self._drop_cancelled()

    def _drop_cancelled(self) -> None:
        while self._waiters and self._waiters[0].cancelled:
            self._waiters.popleft()

    def release(self, size: int) -> None:
        self.used -= size
        assert self.used >= 0, self.used
        self._admit_waiters()

    def _admit_waiters(self) -> None:
        while self._waiters and self.available():
            waiter = self._waiters.popleft()
            if waiter.cancelled:
                continue
            self.used += waiter.size
            waiter.granted()

    @property
    def waiting(self) -> int:
        return sum(1 for w in self._waiters if not w.cancelled)
