"""The SQLite statements of the ACL table (migration 0002): each binding stored once.

The engine (sqlite.py) runs them inside its transactions; they only read and write rows.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Iterable

from contextplane.metadata.records import AclRecord

_COLUMNS = "resource_type, resource_name, pattern_type, principal, host, operation, permission"
_MATCH = " AND ".join(f"{column}=?" for column in _COLUMNS.split(", "))


def load(db: sqlite3.Connection) -> list[AclRecord]:
    return [AclRecord(*row) for row in db.execute(f"SELECT {_COLUMNS} FROM acls")]


def insert(db: sqlite3.Connection, records: Iterable[AclRecord]) -> None:
    db.executemany(
        f"INSERT OR IGNORE INTO acls ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [dataclasses.astuple(r) for r in records],
    )


def delete(db: sqlite3.Connection, records: Iterable[AclRecord]) -> None:
    db.executemany(f"DELETE FROM acls WHERE {_MATCH}", [dataclasses.astuple(r) for r in records])
