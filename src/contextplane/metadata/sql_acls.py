"""The statements of the ACL table (migration 0002): each binding stored once.

The engine (sql_engine.py) runs them inside its transactions; they only read and write rows.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from contextplane.metadata.records import AclRecord
from contextplane.metadata.sql_db import Db

_COLUMNS = "resource_type, resource_name, pattern_type, principal, host, operation, permission"
_MATCH = " AND ".join(f"{column}=?" for column in _COLUMNS.split(", "))


def load(db: Db) -> list[AclRecord]:
    return [AclRecord(*row) for row in db.execute(f"SELECT {_COLUMNS} FROM acls")]


def insert(db: Db, records: Iterable[AclRecord]) -> None:
    db.executemany(
        f"INSERT INTO acls ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        [dataclasses.astuple(r) for r in records],
    )


def delete(db: Db, records: Iterable[AclRecord]) -> None:
    db.executemany(f"DELETE FROM acls WHERE {_MATCH}", [dataclasses.astuple(r) for r in records])
