"""KeyedLocks: one holder per key at a time, and nothing kept once nobody holds a key."""

from __future__ import annotations

import asyncio
import contextlib

from contextplane.tasks import KeyedLocks


def test_holders_of_one_key_take_turns_and_other_keys_do_not_wait() -> None:
    async def run() -> list[str]:
        locks = KeyedLocks()
        order: list[str] = []
        inside = asyncio.Event()
        release = asyncio.Event()

        async def first() -> None:
            async with locks.hold("a"):
                order.append("first in")
                inside.set()
                await release.wait()
                order.append("first out")

        async def second() -> None:
            await inside.wait()
            async with locks.hold("a"):
                order.append("second in")

        async def other() -> None:
            await inside.wait()
            async with locks.hold("b"):
                order.append("other key in")
            release.set()

        await asyncio.gather(first(), second(), other())
        assert len(locks) == 0
        return order

    assert asyncio.run(run()) == ["first in", "other key in", "first out", "second in"]


def test_a_holder_that_raises_or_is_cancelled_leaves_no_lock() -> None:
    async def run() -> int:
        locks = KeyedLocks()
        with contextlib.suppress(ValueError):
            async with locks.hold("a"):
                raise ValueError("boom")
        holder_in = asyncio.Event()

        async def holder() -> None:
            async with locks.hold("b"):
                holder_in.set()
                await asyncio.sleep(3600)

        async def waiter() -> None:
            async with locks.hold("b"):
                pass

        tasks = [asyncio.create_task(holder())]
        await holder_in.wait()
        tasks.append(asyncio.create_task(waiter()))
        await asyncio.sleep(0)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return len(locks)

    assert asyncio.run(run()) == 0
