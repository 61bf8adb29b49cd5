"""Which producer ids of a partition changed since the last object commit wrote them.

An object commit writes only these producers' rows (metadata/sql_producer_state.py),
so its cost follows what changed, not the size of the producer table. Each touch gets a
number: a commit settles only the touches it saw, so a producer touched again while the
commit was on its way is written by the next one.
"""

from __future__ import annotations


class Touched:
    __slots__ = ("_pending", "_count")

    def __init__(self) -> None:
        self._pending: dict[int, int] = {}  # producer id -> number of its latest touch
        self._count = 0

    def touch(self, producer_id: int) -> None:
        self._count += 1
        self._pending[producer_id] = self._count

    def pending(self) -> dict[int, int]:
        """The touches not yet written, as of now (a copy)."""
        return dict(self._pending)

    def settle(self, written: dict[int, int]) -> None:
        """A commit wrote these touches: forget those not touched again since."""
        pending = self._pending
        for producer_id, count in written.items():
            if pending.get(producer_id) == count:
                del pending[producer_id]

    def __len__(self) -> int:
        return len(self._pending)
