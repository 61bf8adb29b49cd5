"""Numbered schema migrations, one directory of SQL files per engine.

`sql/<engine>/NNNN-description.sql` are applied in order, each once; the engine records
applied versions in its `schema_migrations` table. Numbers start at 1 and have no gaps,
and a database that has applied a version this build does not know is refused (it was
written by a newer broker).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from importlib import resources

from contextplane.metadata.sql_db import Db

log = logging.getLogger(__name__)

_NAME = re.compile(r"^(\d{4})-([a-z0-9-]+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


class MigrationError(RuntimeError):
    """The migrations on disk or in the database are inconsistent (the message says how)."""


def migrations(engine: str) -> list[Migration]:
    """Every migration of `engine`, in version order."""
    directory = resources.files("contextplane.metadata") / "sql" / engine
    found: list[Migration] = []
    for entry in directory.iterdir():
        match = _NAME.match(entry.name)
        if match is None:
            raise MigrationError(f"{engine} migration {entry.name!r} is not NNNN-name.sql")
        found.append(Migration(int(match[1]), match[2], entry.read_text()))
    found.sort(key=lambda m: m.version)
    for expected, migration in enumerate(found, start=1):
        if migration.version != expected:
            raise MigrationError(
                f"{engine} migrations skip from {expected - 1} to {migration.version}"
            )
    return found


def pending(engine: str, applied: set[int]) -> list[Migration]:
    """The migrations a database that has applied `applied` still needs."""
    known = migrations(engine)
    newest = known[-1].version if known else 0
    unknown = sorted(v for v in applied if v > newest)
    if unknown:
        raise MigrationError(
            f"the metadata store has schema version {unknown[-1]}; this broker knows up to"
            f" {newest}: it was written by a newer broker"
        )
    return [m for m in known if m.version not in applied]


def apply(db: Db, engine: str, transaction: Callable[[], AbstractContextManager[None]]) -> None:
    """Bring the database up to this build's schema: each pending migration of `engine`
    and its row in `schema_migrations`, one transaction per migration."""
    db.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations"
        " (version INTEGER PRIMARY KEY, name TEXT NOT NULL)"
    )
    applied = {int(row[0]) for row in db.execute("SELECT version FROM schema_migrations")}
    for migration in pending(engine, applied):
        with transaction():
            for statement in statements(migration.sql):
                db.execute(statement)
            db.execute(
                "INSERT INTO schema_migrations VALUES (?, ?)", (migration.version, migration.name)
            )
        log.info("metadata schema migrated to version %d (%s)", migration.version, migration.name)


def statements(sql: str) -> list[str]:
    """A migration's statements, run one by one inside the migration's transaction
    (SQLite's executescript would commit it)."""
    lines = [line for line in sql.splitlines() if not line.lstrip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]
