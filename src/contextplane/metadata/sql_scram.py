"""The statements of the SCRAM credential table (migration 0005).

The engine (sql_engine.py) runs them inside its transactions; they only read and write rows.
"""

from __future__ import annotations

from collections.abc import Iterable

from contextplane.metadata.records import ScramCredentialRecord
from contextplane.metadata.sql_db import Db

_COLUMNS = "user_name, mechanism, salt, stored_key, server_key, iterations"


def load(db: Db) -> list[ScramCredentialRecord]:
    rows = db.execute(f"SELECT {_COLUMNS} FROM scram_credentials ORDER BY user_name, mechanism")
    return [
        ScramCredentialRecord(u, m, bytes(s), bytes(k), bytes(v), i) for u, m, s, k, v, i in rows
    ]


def alter(
    db: Db,
    upserts: Iterable[ScramCredentialRecord],
    deletions: Iterable[tuple[str, str]],
) -> None:
    """Delete (user, mechanism) pairs, then insert or replace credentials."""
    db.executemany(
        "DELETE FROM scram_credentials WHERE user_name=? AND mechanism=?", list(deletions)
    )
    db.executemany(
        f"INSERT INTO scram_credentials ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (user_name, mechanism) DO UPDATE SET salt=excluded.salt,"
        " stored_key=excluded.stored_key, server_key=excluded.server_key,"
        " iterations=excluded.iterations",
        [(r.user, r.mechanism, r.salt, r.stored_key, r.server_key, r.iterations) for r in upserts],
    )
