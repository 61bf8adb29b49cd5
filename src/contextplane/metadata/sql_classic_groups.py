"""The engine and store methods over the classic group table (migration 0015), mixed
into `SqlEngine` and `SqlMetadataStore`; its statements are `sql_group_documents.py`'s.

A row's value is the group's GroupMetadataValue (coordinators/classic_stored.py writes
and reads it); here it is opaque bytes. One save is one transaction.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from contextplane.metadata.sql_db import Db
from contextplane.metadata.sql_group_documents import load, save_all


class ClassicGroupRows:
    """`SqlEngine`'s classic group methods (over its connection and transactions)."""

    _db: Db

    def classic_groups(self) -> dict[str, bytes]:
        return load(self._db, "classic_groups")

    def save_classic_groups(
        self, writes: dict[str, bytes | None], fences: Collection[tuple[int, int]] = ()
    ) -> None:
        save_all(self, "classic_groups", writes, fences)


class ClassicGroupCalls:
    """`SqlMetadataStore`'s classic group methods, run on its worker thread."""

    async def classic_groups(self) -> dict[str, bytes]:
        store: Any = self  # a SqlMetadataStore
        result: dict[str, bytes] = await store._call(store.engine.classic_groups)
        return result

    async def save_classic_groups(
        self, writes: dict[str, bytes | None], fences: Collection[tuple[int, int]] = ()
    ) -> None:
        store: Any = self
        await store._call(store.engine.save_classic_groups, writes, fences)
