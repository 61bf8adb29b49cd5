"""What the shared SQL code (sql_*.py) needs of a database connection: `execute` and
`executemany` with `?` placeholders, on a cursor that fetches, iterates and counts rows.

`sqlite3.Connection` is one as it is; PostgreSQL's connection is adapted by
`postgres_db.PostgresDb`. The statements are written once, in the SQL both engines
accept (`ON CONFLICT ... DO NOTHING / DO UPDATE`, `RETURNING`, `CASE` rather than the
two-argument `MAX`); `lock_rows` is the one clause only PostgreSQL needs.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Protocol


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...
    def __iter__(self) -> Iterator[Any]: ...


class Db(Protocol):
    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Cursor: ...
    def executemany(self, sql: str, parameters: Any, /) -> Cursor: ...
