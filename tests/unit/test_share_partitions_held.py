"""What one ShareFetch's work in the share coordinator visits: the share partitions it
changed and those holding locks, never every share partition the broker ever served
(a client naming a new group in each request made thousands of them, and each request
then walked them all: its save, the lock timer's round and a session's release)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from contextplane.coordinators.share_coordinator import ShareCoordinator
from contextplane.coordinators.share_partition import SharePartition
from contextplane.settings import Settings
from tests.support.metadata import open_store

IDLE = 3_000  # share partitions of groups that fetched once and went
VISITS = ("take_undeliverable", "next_deadline", "expire_locks", "release_member")


def _counting(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    visits: Counter[str] = Counter()

    def wrap(name: str) -> Callable[..., Any]:
        real = getattr(SharePartition, name)

        def counted(self: SharePartition, *args: Any) -> Any:
            visits[name] += 1
            return real(self, *args)

        return counted

    for name in VISITS:
        monkeypatch.setattr(SharePartition, name, wrap(name))
    return visits


def test_a_fetch_visits_only_the_share_partitions_it_uses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def run() -> Counter[str]:
        store = await open_store(Settings(data_dir=tmp_path))
        shares = ShareCoordinator(store)
        await shares.start(lambda _topic: 1)
        try:
            for index in range(IDLE):
                shares.partition((f"idle-{index}", "t", 0), 0)
            assert await shares.save()
            # The timer's next round looks at each handed-out partition once, and from
            # then on only at those holding locks.
            shares.kick()
            await asyncio.sleep(0.05)
            shares.sessions.open(("busy", "m"), {("t", 0)})
            visits = _counting(monkeypatch)
            # One fetch: its share partition acquires and is saved; the timer runs.
            partition = shares.partition(("busy", "t", 0), 0)
            assert partition.acquire("m", iter(range(5)), 5, shares.now_ms(), 5)
            shares.kick()
            assert await shares.save()
            await asyncio.sleep(0.05)  # the timer task's round
            # Its session closes: what it holds goes back.
            shares.sessions.close(("busy", "m"))
            shares.release("busy", "m")
            assert partition.acquired_count() == 0
            assert await shares.save()
            return visits
        finally:
            await shares.stop()
            await store.close()

    visits = asyncio.run(run())
    # A handful each (the busy partition, a few times), not thousands.
    assert all(visits[name] < 20 for name in VISITS), visits
