"""A metadata store for tests that drive components directly: SQLite in the test's data
directory, its calls run inline (no worker thread); and the synchronous engine of a
metadata URL, for tests of the store's SQL itself."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

from contextplane.metadata.runner import InlineRunner
from contextplane.metadata.store import MetadataStore, open_metadata_store
from contextplane.settings import Settings

if TYPE_CHECKING:
    from contextplane.metadata.sql_engine import SqlEngine


async def open_store(settings: Settings, topics: dict[str, int] | None = None) -> MetadataStore:
    """The store of `settings`, opened, with `topics` (name -> partitions) created."""
    store = open_metadata_store(settings.resolved_metadata_url, runner=InlineRunner())
    await store.open()
    existing = {t.name for t in await store.topics()}
    for name, partitions in (topics or {}).items():
        if name not in existing:
            await store.create_topic(name, partitions, {})
    return store


def open_engine(url: str) -> SqlEngine:
    """The synchronous engine of a metadata URL (sqlite:/// or postgresql://), opened."""
    if url.startswith("sqlite:///"):
        from contextplane.metadata.sqlite import SqliteEngine

        return SqliteEngine(url.removeprefix("sqlite:///"))
    from contextplane.metadata.postgres import PostgresEngine

    return PostgresEngine(url)


def uploaded_end_offsets(data_dir: Path, topic: str) -> dict[int, int]:
    """Partition -> the end offset of its data committed to objects, read from a running
    broker's SQLite metadata (read-only): what reads are served from objects, not the WAL."""
    db = sqlite3.connect(f"file:{data_dir / 'metadata.db'}?mode=ro", uri=True, timeout=10)
    try:
        rows = db.execute(
            "SELECT p.partition, MAX(r.end_offset) FROM ranges r JOIN partitions p"
            " ON p.stream_id = r.stream_id WHERE p.topic = ? GROUP BY p.partition",
            (topic,),
        ).fetchall()
    finally:
        db.close()
    return {partition: end for partition, end in rows}
