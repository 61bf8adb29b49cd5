"""Which groups this broker's group coordinator serves (RFC 0004 §3).

A group's shard is its `__consumer_offsets` partition (`partition_for`, Kafka's
`abs(hashCode) % partitions`), and its coordinator is that partition's leader, as in
Kafka. The coordinator serves a group only while its shard is loaded here (the
reconciler loads a shard when it opens the partition and unloads it when it hands it
over) and still led here at that moment (`ShardLeases.lease`: a partition fenced by
another broker's claim is not, whatever was loaded). Every offset write carries the
shard's (stream, leader epoch), checked in the write's own store transaction, so a
coordinator that lost its shard while paused commits nothing.

Without leases (a coordinator built alone, as unit tests do) every group is served and
nothing is fenced.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Iterable
from typing import Protocol

from contextplane.protocol.error_codes import ErrorCode
from contextplane.protocol.offsets_records import partition_for


class ShardLeases(Protocol):
    def count(self) -> int:
        """Partitions of `__consumer_offsets` (0 while it does not exist)."""
        ...

    def lease(self, shard: int) -> tuple[int, int] | None:
        """(stream id, leader epoch) of the shard's partition while it is led here and
        not being handed over; None otherwise."""
        ...

    def release(self, stream_id: int) -> None:
        """Stop leading the partition (a write found it fenced)."""
        ...


class GroupShards:
    def __init__(self, leases: ShardLeases | None = None) -> None:
        self.leases = leases
        self.loaded: set[int] = set()
        # Shard -> the leader epoch it was unloaded at while still led here (a handover
        # under way): not loaded again at that epoch.
        self.unloaded_at: dict[int, int] = {}
        # Called with the stream of a shard a group state write found fenced.
        self.on_fenced: Callable[[int], None] = lambda stream_id: None

    def forget(self, shard: int) -> None:
        """`shard` unloaded: not loaded here, nor loaded again at the epoch it is still
        leased at (a handover under way)."""
        self.loaded.discard(shard)
        lease = self.leases.lease(shard) if self.leases is not None else None
        if lease is not None:
            self.unloaded_at[shard] = lease[1]

    def shard(self, group_id: str) -> int:
        count = self.leases.count() if self.leases is not None else 0
        return partition_for(group_id, count) if count > 0 else -1

    def in_shards(self, shards: set[int]) -> Callable[[str], bool]:
        """A predicate: does a group belong to one of `shards`?"""
        if self.leases is None:
            return lambda group_id: True
        return lambda group_id: self.shard(group_id) in shards

    def led(self) -> set[int]:
        """The shards whose partitions this broker leads now."""
        if self.leases is None:
            return set()
        return {p for p in range(self.leases.count()) if self.leases.lease(p) is not None}

    def fence(self, group_id: str) -> tuple[int, int] | None:
        """The (stream, epoch) a write for the group is fenced by; None without leases.
        Raises NotServed when the group's shard is not served here."""
        if self.leases is None:
            return None
        shard = self.shard(group_id)
        lease = self.leases.lease(shard) if shard in self.loaded else None
        if lease is None:
            raise NotServed(shard)
        return lease

    def fences(self, group_ids: Iterable[str]) -> tuple[list[str], set[tuple[int, int]]]:
        """(the groups of `group_ids` served here, the fences of their shards): a
        group state write covers only those, each checked in its transaction."""
        served: list[str] = []
        fences: set[tuple[int, int]] = set()
        for group_id in group_ids:
            try:
                fence = self.fence(group_id)
            except NotServed:
                continue  # moved: its new coordinator owns its rows
            served.append(group_id)
            if fence is not None:
                fences.add(fence)
        return served, fences

    def loadable(self, shard: int) -> bool:
        """Led here, not loaded, and not unloaded at its current epoch."""
        if self.leases is None or shard < 0 or shard in self.loaded:
            return False
        lease = self.leases.lease(shard)
        return lease is not None and self.unloaded_at.get(shard) != lease[1]

    def refusal(
        self, key: str, loading: Container[int], load: Callable[[int], None]
    ) -> ErrorCode | None:
        """Why a request for `key` is not served here, or None. A shard led here at an
        epoch it was never loaded or unloaded at (its partition recovered from a dead
        broker's WAL after the reconciler's pass, say) is loaded now (`load`, unless it is
        `loading`), answered COORDINATOR_LOAD_IN_PROGRESS meanwhile, as Kafka answers."""
        if self.serves(key):
            return None
        shard = self.shard(key)
        if self.loadable(shard):
            if shard not in loading:
                load(shard)
            return ErrorCode.coordinator_load_in_progress
        return ErrorCode.not_coordinator

    def serves(self, group_id: str) -> bool:
        try:
            self.fence(group_id)
        except NotServed:
            return False
        return True


class NotServed(Exception):
    """The group's shard is not loaded here, or no longer led here."""

    def __init__(self, shard: int) -> None:
        super().__init__(f"shard {shard} is not served here")
        self.shard = shard
