"""The context service's local store (a real SQLite file): the changelog offset of each
entity's row, kept with the row, and a store written before that column opened in place
(its rows answer with no offset until they change)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from contextplane.services.context.freshness import Position
from contextplane.services.context.store import LocalStore


def test_an_entity_row_carries_its_changelog_offset(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "context.db")
    try:
        positions = {("crm.accounts", 0): Position(5, 1)}
        store.commit({("account", "a1"): b'{"n":1}'}, positions, 7, {("account", "a1"): 6})
        assert store.entity_row("account", "a1") == (b'{"n":1}', 6, positions)
        # A state whose delivery report named no offset: none, never the older one.
        store.commit({("account", "a1"): b'{"n":2}'}, {}, None)
        assert store.entity_row("account", "a1")[:2] == (b'{"n":2}', None)
        assert store.entity_row("account", "a2") == (None, None, positions)
    finally:
        store.close()


def test_a_store_from_before_the_column_opens_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "context.db"
    old = sqlite3.connect(path)
    old.executescript(
        """
        CREATE TABLE entities (
            view TEXT NOT NULL, entity TEXT NOT NULL, value BLOB NOT NULL,
            PRIMARY KEY (view, entity)
        ) WITHOUT ROWID;
        INSERT INTO entities VALUES ('account', 'a1', x'7b7d');
        """
    )
    old.commit()
    old.close()
    store = LocalStore(path)
    try:
        assert store.entity_row("account", "a1") == (b"{}", None, {})
        store.commit({("account", "a1"): b'{"n":1}'}, {}, None, {("account", "a1"): 3})
        assert store.entity_row("account", "a1") == (b'{"n":1}', 3, {})
    finally:
        store.close()
    reopened = LocalStore(path)
    try:
        assert reopened.entity("account", "a1") == (b'{"n":1}', {})
    finally:
        reopened.close()
