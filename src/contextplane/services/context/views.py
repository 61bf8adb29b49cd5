"""The views file: which topics feed each entity, how a record names its entity, and how
its value merges into the entity's state (RFC 0006 §1).

TOML, read by the standard library's `tomllib`::

    [views.account]
    freshness_target_ms = 5000        # optional: stale when behind and older than this
    [[views.account.sources]]
    topic = "crm.accounts"
    entity_id = "key"                 # the record key (UTF-8), or value.<dotted.path>
    field = "profile"                 # where the value lands (default: the topic)
    merge = "latest"                  # or "list" (newest first, max_items of them)
    on_tombstone = "delete-entity"    # or "clear" (this field) or "ignore"

Every error names where it is: TOML syntax by line and column, a bad value by its path
in the file (`views.account.sources[1].merge`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contextplane.services.toml_tables import named_tables, read_file

MERGES = ("latest", "list")
ON_TOMBSTONE = ("clear", "delete-entity", "ignore")
# A list merge keeps at most this many values: an entity's state is produced to the
# changelog whole, and a record is bounded (RFC 0006, Impact).
LIST_ITEMS_MAX = 1000
VIEWS_MAX = 100
FRESHNESS_TARGET_MS_MAX = 24 * 3600 * 1000
SOURCES_PER_VIEW_MAX = 32
# A view name is part of changelog keys and URLs: letters, digits, '.', '_' and '-'.
_NAME = re.compile(r"[A-Za-z0-9._-]{1,100}")
# Kafka's own rule for topic names.
_TOPIC = re.compile(r"[A-Za-z0-9._-]{1,249}")


class ViewsFileError(ValueError):
    """A views file that cannot be used, with where and why."""


@dataclass(frozen=True)
class Source:
    topic: str
    # None: the record key; else the path into the JSON value ("account.id" -> ["account", "id"]).
    id_path: tuple[str, ...] | None
    field: str
    merge: str
    max_items: int
    on_tombstone: str


@dataclass(frozen=True)
class View:
    name: str
    sources: tuple[Source, ...]
    freshness_target_ms: int | None = None

    @property
    def topics(self) -> frozenset[str]:
        return frozenset(source.topic for source in self.sources)


def load_views(path: Path) -> dict[str, View]:
    return parse_views(read_file(path, ViewsFileError), str(path))


def parse_views(text: str, where: str = "views file") -> dict[str, View]:
    views = named_tables(text, where, "views", "<name>", VIEWS_MAX, ViewsFileError)
    return {name: _view(where, name, body) for name, body in views.items()}


def _view(where: str, name: str, body: Any) -> View:
    at = f"views.{name}"
    if not _NAME.fullmatch(name):
        raise ViewsFileError(f"{where}: {at}: a view name is 1-100 of A-Z a-z 0-9 . _ -")
    if not isinstance(body, dict):
        raise ViewsFileError(f"{where}: {at}: expected a table")
    unknown = set(body) - {"sources", "freshness_target_ms"}
    if unknown:
        raise ViewsFileError(f"{where}: {at}.{sorted(unknown)[0]}: unknown key")
    target = body.get("freshness_target_ms")
    if target is not None and (
        not isinstance(target, int)
        or isinstance(target, bool)
        or not 1 <= target <= FRESHNESS_TARGET_MS_MAX
    ):
        raise ViewsFileError(
            f"{where}: {at}.freshness_target_ms: expected 1 to {FRESHNESS_TARGET_MS_MAX},"
            f" got {target!r}"
        )
    sources = body.get("sources")
    if not isinstance(sources, list) or not sources:
        raise ViewsFileError(f"{where}: {at}.sources: expected one or more [[{at}.sources]]")
    if len(sources) > SOURCES_PER_VIEW_MAX:
        raise ViewsFileError(f"{where}: {at}.sources: more than {SOURCES_PER_VIEW_MAX}")
    parsed = tuple(_source(where, f"{at}.sources[{i}]", s) for i, s in enumerate(sources))
    fields = [source.field for source in parsed]
    for i, source in enumerate(parsed):
        if fields.index(source.field) != i:
            raise ViewsFileError(
                f"{where}: {at}.sources[{i}].field: {source.field!r} is already the field"
                f" of sources[{fields.index(source.field)}]"
            )
    return View(name, parsed, target)


_SOURCE_KEYS = {"topic", "entity_id", "field", "merge", "max_items", "on_tombstone"}


def _source(where: str, at: str, body: Any) -> Source:
    def fail(key: str, message: str) -> ViewsFileError:
        return ViewsFileError(f"{where}: {at}.{key}: {message}")

    if not isinstance(body, dict):
        raise ViewsFileError(f"{where}: {at}: expected a table")
    unknown = set(body) - _SOURCE_KEYS
    if unknown:
        raise fail(sorted(unknown)[0], f"unknown key (known: {', '.join(sorted(_SOURCE_KEYS))})")
    topic = body.get("topic")
    if not isinstance(topic, str) or not _TOPIC.fullmatch(topic) or topic in (".", ".."):
        raise fail("topic", f"expected a Kafka topic name, got {topic!r}")
    entity_id = body.get("entity_id", "key")
    if not isinstance(entity_id, str):
        raise fail("entity_id", f'expected "key" or "value.<path>", got {entity_id!r}')
    id_path: tuple[str, ...] | None = None
    if entity_id != "key":
        head, _, rest = entity_id.partition(".")
        steps = tuple(rest.split(".")) if rest else ()
        if head != "value" or not steps or not all(steps):
            raise fail("entity_id", f'expected "key" or "value.<path>", got {entity_id!r}')
        id_path = steps
    field = body.get("field", topic)
    if not isinstance(field, str) or not field:
        raise fail("field", f"expected a non-empty string, got {field!r}")
    merge = body.get("merge", "latest")
    if merge not in MERGES:
        raise fail("merge", f"expected one of {', '.join(MERGES)}, got {merge!r}")
    max_items = body.get("max_items", 10 if merge == "list" else 1)
    if merge == "latest" and "max_items" in body:
        raise fail("max_items", 'only a "list" merge keeps several items')
    if not isinstance(max_items, int) or isinstance(max_items, bool):
        raise fail("max_items", f"expected an integer, got {max_items!r}")
    if not 1 <= max_items <= LIST_ITEMS_MAX:
        raise fail("max_items", f"expected 1 to {LIST_ITEMS_MAX}, got {max_items}")
    default_tombstone = "delete-entity" if id_path is None and merge == "latest" else "clear"
    on_tombstone = body.get("on_tombstone", default_tombstone)
    if on_tombstone not in ON_TOMBSTONE:
        raise fail(
            "on_tombstone", f"expected one of {', '.join(ON_TOMBSTONE)}, got {on_tombstone!r}"
        )
    return Source(topic, id_path, field, merge, max_items, on_tombstone)
