"""Ranged object reads for catch-up fetches, through a small LRU cache of ranges.

Each read fetches one partition's whole range of an object with one ranged GET, within
the memory budget's in-flight share; the range stays cached (least recently used first
out) within the budget's block cache share, so the next fetches of a catching-up consumer
need no request.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

from contextplane.metadata.records import RangeRecord
from contextplane.storage.memory import MemoryBudget
from contextplane.storage.objectstore import ObjectStore


class BlockCache:
    def __init__(self, objects: ObjectStore, budget: MemoryBudget) -> None:
        self._objects = objects
        self._budget = budget
        self._blocks: OrderedDict[tuple[str, int], memoryview] = OrderedDict()

    async def read(self, record: RangeRecord) -> memoryview:
        """The bytes of one range."""
        key = (record.object_key, record.position)
        data = self._blocks.get(key)
        if data is not None:
            self._blocks.move_to_end(key)
            return data
        budget = self._budget
        async with budget.reserve(record.size):
            data = await self._objects.get_range(
                record.object_key, record.position, record.position + record.size
            )
        self._blocks[key] = data
        budget.block_cache_bytes += len(data)
        while budget.block_cache_bytes > budget.block_cache_limit and len(self._blocks) > 1:
            _, evicted = self._blocks.popitem(last=False)
            budget.block_cache_bytes -= len(evicted)
        budget.on_shrink()  # the log cache's room shrank
        return data

    def forget_objects(self, keys: Iterable[str]) -> None:
        """Drop the cached ranges of deleted objects."""
        doomed = set(keys)
        for cached in [k for k in self._blocks if k[0] in doomed]:
            self._budget.block_cache_bytes -= len(self._blocks.pop(cached))
