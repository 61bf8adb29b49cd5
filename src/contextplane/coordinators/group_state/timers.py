"""The machine's timers, as data.

Rules of this file:

* A timer is a frozen record of what is due (`HeartbeatExpiry`, `InitialRebalanceDelay`,
  `JoinDeadline`, `SyncDeadline`) with a key like Kafka's timer keys. Scheduling a key
  replaces its previous entry, so a group has at most one join-phase timer and one sync
  timer, and a member at most one heartbeat timer.
* `Timers` never reads a clock and never runs anything: the machine asks it for the next
  deadline and pops what is due at a time it is given, then decides what each timer means.
* Its heap is bounded: replaced and cancelled entries are dropped lazily and the heap is
  rebuilt once it is four times larger than the live entries.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")

HeartbeatKey = tuple[str, str, str]
GroupKey = tuple[str, str]


class Timers(Generic[T]):
    """Keyed one-shot timers on a heap; scheduling a key replaces its previous entry."""

    def __init__(self) -> None:
        self._entries: dict[Hashable, tuple[int, int, T]] = {}
        self._heap: list[tuple[int, int, Hashable]] = []
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._entries

    def deadline(self, key: Hashable) -> int | None:
        entry = self._entries.get(key)
        return None if entry is None else entry[0]

    def get(self, key: Hashable) -> T | None:
        entry = self._entries.get(key)
        return None if entry is None else entry[2]

    def schedule(self, key: Hashable, deadline_ms: int, payload: T) -> None:
        seq = next(self._seq)
        self._entries[key] = (deadline_ms, seq, payload)
        heapq.heappush(self._heap, (deadline_ms, seq, key))
        if len(self._heap) > 64 and len(self._heap) > 4 * len(self._entries):
            self._compact()

    def cancel(self, key: Hashable) -> None:
        self._entries.pop(key, None)

    def _compact(self) -> None:
        self._heap = [(d, s, k) for k, (d, s, _) in self._entries.items()]
        heapq.heapify(self._heap)

    def _drop_stale_top(self) -> None:
        while self._heap:
            _, seq, key = self._heap[0]
            entry = self._entries.get(key)
            if entry is not None and entry[1] == seq:
                return
            heapq.heappop(self._heap)

    def next_deadline(self) -> int | None:
        self._drop_stale_top()
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now_ms: int) -> T | None:
        """The earliest timer due at `now_ms` (removed), or None."""
        self._drop_stale_top()
        if not self._heap or self._heap[0][0] > now_ms:
            return None
        _, _, key = heapq.heappop(self._heap)
        _, _, payload = self._entries.pop(key)
        return payload


def heartbeat_key(group_id: str, member_id: str) -> HeartbeatKey:
    return ("heartbeat", group_id, member_id)


def join_key(group_id: str) -> GroupKey:
    return ("join", group_id)


def sync_key(group_id: str) -> GroupKey:
    return ("sync", group_id)


@dataclass(frozen=True, slots=True)
class HeartbeatExpiry:
    """A member's session (or a pending member's wait for its second JoinGroup) ends."""

    group_id: str
    member_id: str

    @property
    def key(self) -> HeartbeatKey:
        return heartbeat_key(self.group_id, self.member_id)


@dataclass(frozen=True, slots=True)
class InitialRebalanceDelay:
    """`group.initial.rebalance.delay.ms` of a group's first rebalance has passed;
    `remaining_ms` of its rebalance timeout is left to extend it by."""

    group_id: str
    delay_ms: int
    remaining_ms: int

    @property
    def key(self) -> GroupKey:
        return join_key(self.group_id)


@dataclass(frozen=True, slots=True)
class JoinDeadline:
    """The join phase's rebalance timeout has passed."""

    group_id: str

    @property
    def key(self) -> GroupKey:
        return join_key(self.group_id)


@dataclass(frozen=True, slots=True)
class SyncDeadline:
    """The members of `generation_id` had a rebalance timeout to send SyncGroup."""

    group_id: str
    generation_id: int

    @property
    def key(self) -> GroupKey:
        return sync_key(self.group_id)


GroupTimer = HeartbeatExpiry | InitialRebalanceDelay | JoinDeadline | SyncDeadline
