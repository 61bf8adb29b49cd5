"""Who owns each source partition of a partitioned context group, as a misdirected read
(421) names it: asked of the group (DescribeConsumerGroups) through one admin client, one
lookup at a time, and kept while this instance's own assignment stands. Every rebalance
of the group (eager, range) reassigns this member too, so a new assignment is when the
answer may change. A flood of misdirected reads costs the broker one request, not one
request (and one Kafka client, with its threads and connections) each."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from confluent_kafka.admin import AdminClient

from contextplane.services.context.partitions import Owner, owners

log = logging.getLogger("contextplane.context")

# A lookup's bound (DescribeConsumerGroups).
OWNER_LOOKUP_S = 5.0


class OwnerLookup:
    def __init__(
        self,
        common: dict[str, Any],
        group: str,
        partition_count: Callable[[], int],
        assignment: Callable[[], frozenset[int] | None],
    ) -> None:
        self._common = common
        self._group = group
        self._partition_count = partition_count
        self._assignment = assignment  # the applier's current set: a new object per rebalance
        self._admin: AdminClient | None = None
        self._lock = asyncio.Lock()
        self._known: dict[int, Owner] | None = None
        self._known_for: frozenset[int] | None = None
        self.lookups = 0  # DescribeConsumerGroups asked since start (/v1/views shows it)

    async def owners(self) -> dict[int, Owner]:
        """Each partition's owner; {} when the group could not be asked (the answer is
        the same: ask again later)."""
        async with self._lock:
            mine = self._assignment()
            if self._known is not None and mine and mine is self._known_for:
                return self._known
            if self._admin is None:
                self._admin = AdminClient(self._common)
            self.lookups += 1
            try:
                found = await asyncio.to_thread(owners, self._admin, self._group, OWNER_LOOKUP_S)
            except Exception as exc:
                log.warning("looking up the owners of group %s: %s", self._group, exc)
                return {}
            # Kept only when whole: a group mid-rebalance names fewer owners.
            whole = set(found) == set(range(self._partition_count()))
            self._known, self._known_for = (found, mine) if whole else (None, None)
            return found
