"""The engine and store methods over the share group membership table (migration 0016),
mixed into `SqlEngine` and `SqlMetadataStore`; its statements are `sql_group_documents.py`'s.

A row's value is the group's membership (coordinators/share_stored.py writes
and reads it); here it is opaque bytes. One save is one transaction, fenced by the
groups' coordinator shards as `save_classic_groups`.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from contextplane.metadata.sql_db import Db
from contextplane.metadata.sql_group_documents import load, save_all


class ShareGroupRows:
    """`SqlEngine`'s share group membership methods (over its connection and transactions)."""

    _db: Db

    def share_groups(self) -> dict[str, bytes]:
        return load(self._db, "share_groups")

    def save_share_groups(
        self, writes: dict[str, bytes | None], fences: Collection[tuple[int, int]] = ()
    ) -> None:
        save_all(self, "share_groups", writes, fences)


class ShareGroupCalls:
    """`SqlMetadataStore`'s share group membership methods, run on its worker thread."""

    async def share_groups(self) -> dict[str, bytes]:
        store: Any = self  # a SqlMetadataStore
        result: dict[str, bytes] = await store._call(store.engine.share_groups)
        return result

    async def save_share_groups(
        self, writes: dict[str, bytes | None], fences: Collection[tuple[int, int]] = ()
    ) -> None:
        store: Any = self
        await store._call(store.engine.save_share_groups, writes, fences)
