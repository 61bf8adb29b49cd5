"""The merge rules: how a record names its entity (or is skipped, with the reason), and how
latest, bounded-list and tombstone rules fold it into the entity's state."""

from __future__ import annotations

import json

import pytest

from contextplane.services.context.merge import (
    ENTITY_ID_BYTES_MAX,
    TOMBSTONE,
    VALUE_BYTES_MAX,
    Entity,
    Origin,
    Skip,
    decode_entity,
    encode_entity,
    fold,
    read,
)
from contextplane.services.context.views import Source

BY_KEY = Source("crm.accounts", None, "profile", "latest", 1, "delete-entity")
BY_PATH = Source("support.tickets", ("account", "id"), "tickets", "list", 3, "clear")


def at(offset: int) -> Origin:
    return Origin("t", 0, offset, 1_700_000_000_000 + offset)


def test_the_entity_id_comes_from_the_key_or_a_path_in_the_value() -> None:
    assert read(BY_KEY, b"a1", b'{"name": "Acme"}') == ("a1", {"name": "Acme"})
    assert read(BY_KEY, b"a1", None) == ("a1", TOMBSTONE)
    assert read(BY_PATH, b"t9", b'{"account": {"id": "a1"}}') == ("a1", {"account": {"id": "a1"}})
    assert read(BY_PATH, None, b'{"account": {"id": 42}}') == ("42", {"account": {"id": 42}})


@pytest.mark.parametrize(
    ("source", "key", "value", "reason"),
    [
        (BY_KEY, b"a1", b"not json", "value-not-json"),
        (BY_KEY, b"a1", b"[" * 100_000, "value-not-json"),
        (BY_KEY, None, b"{}", "no-key"),
        (BY_KEY, b"\xff\xfe", b"{}", "key-not-utf8"),
        (BY_KEY, b"", b"{}", "bad-entity-id"),
        (BY_KEY, b"k" * (ENTITY_ID_BYTES_MAX + 1), b"{}", "bad-entity-id"),
        (BY_KEY, b"a1", b" " * (VALUE_BYTES_MAX + 1), "value-too-large"),
        (BY_PATH, b"t1", b'{"account": {}}', "no-entity-id"),
        (BY_PATH, b"t1", b'{"account": "a1"}', "no-entity-id"),
        (BY_PATH, b"t1", b'{"account": {"id": true}}', "no-entity-id"),
        (BY_PATH, b"t1", b'{"account": {"id": {"x": 1}}}', "no-entity-id"),
        (BY_PATH, b"t1", b"[1, 2]", "no-entity-id"),
        (BY_PATH, b"t1", None, "tombstone-without-key-id"),
    ],
)
def test_a_record_that_does_not_parse_is_skipped_with_its_reason(
    source: Source, key: bytes | None, value: bytes | None, reason: str
) -> None:
    assert read(source, key, value) == Skip(reason)


def test_latest_keeps_the_newest_value_and_who_wrote_it() -> None:
    first = fold(BY_KEY, None, {"tier": "gold"}, at(1))
    second = fold(BY_KEY, first, {"tier": "platinum"}, at(2))
    assert second == Entity({"profile": {"tier": "platinum"}}, at(2))
    assert first == Entity({"profile": {"tier": "gold"}}, at(1))  # not changed in place


def test_a_list_keeps_the_newest_items_first_up_to_its_bound() -> None:
    entity = None
    for n in range(5):
        entity = fold(BY_PATH, entity, {"n": n}, at(n))
    assert entity == Entity({"tickets": [{"n": 4}, {"n": 3}, {"n": 2}]}, at(4))


def test_sources_merge_into_their_own_fields() -> None:
    entity = fold(BY_KEY, None, {"tier": "gold"}, at(1))
    entity = fold(BY_PATH, entity, {"n": 1}, at(2))
    assert entity is not None
    assert entity.state == {"profile": {"tier": "gold"}, "tickets": [{"n": 1}]}


def test_tombstones_delete_clear_or_are_ignored() -> None:
    both = Entity({"profile": {"tier": "gold"}, "tickets": [{"n": 1}]}, at(1))
    assert fold(BY_KEY, both, TOMBSTONE, at(2)) is None
    clear = Source("crm.accounts", None, "profile", "latest", 1, "clear")
    assert fold(clear, both, TOMBSTONE, at(2)) == Entity({"tickets": [{"n": 1}]}, at(2))
    only_profile = Entity({"profile": {"tier": "gold"}}, at(1))
    assert fold(clear, only_profile, TOMBSTONE, at(2)) is None  # nothing left: deleted
    ignore = Source("crm.accounts", None, "profile", "latest", 1, "ignore")
    assert fold(ignore, both, TOMBSTONE, at(2)) is both
    # A tombstone for an entity never seen leaves nothing.
    assert fold(BY_KEY, None, TOMBSTONE, at(2)) is None
    assert fold(clear, None, TOMBSTONE, at(2)) is None


def test_an_entity_round_trips_through_the_changelog_encoding() -> None:
    entity = Entity({"profile": {"name": "Acme ✓"}, "tickets": [1, None]}, at(7))
    raw = encode_entity(entity)
    assert decode_entity(raw) == entity
    assert json.loads(raw)["changed_by"] == ["t", 0, 7, 1_700_000_000_007]
