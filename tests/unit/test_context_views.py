"""The context service's views file: what a valid file declares, and a clear error naming
the line or the field for each way a file can be wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from contextplane.services.context.views import (
    LIST_ITEMS_MAX,
    Source,
    ViewsFileError,
    load_views,
    parse_views,
)

VALID = """
[[views.account.sources]]
topic = "crm.accounts"
field = "profile"

[[views.account.sources]]
topic = "support.tickets"
entity_id = "value.account.id"
merge = "list"
max_items = 5

[views.incident]
freshness_target_ms = 5000
[[views.incident.sources]]
topic = "ops.incidents"
on_tombstone = "ignore"
"""


def test_a_valid_file_declares_views_sources_and_defaults() -> None:
    views = parse_views(VALID)
    assert sorted(views) == ["account", "incident"]
    profile, tickets = views["account"].sources
    assert profile == Source("crm.accounts", None, "profile", "latest", 1, "delete-entity")
    assert tickets == Source(
        "support.tickets", ("account", "id"), "support.tickets", "list", 5, "clear"
    )
    assert views["account"].topics == {"crm.accounts", "support.tickets"}
    assert views["incident"].sources[0].on_tombstone == "ignore"
    assert views["incident"].freshness_target_ms == 5000
    assert views["account"].freshness_target_ms is None


def test_a_list_keeps_ten_items_unless_told() -> None:
    text = '[[views.v.sources]]\ntopic = "t"\nmerge = "list"\n'
    assert parse_views(text)["v"].sources[0].max_items == 10


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ('[[views.a.sources]]\ntopic = "t"\nmerge = \n', "line 3"),
        ("[views.a\n", "line 1"),
        ('[[views.a.sources]]\ntopic = "t"\nmerge = "sum"\n', "views.a.sources[0].merge"),
        (
            '[[views.a.sources]]\ntopic = "t"\n[[views.a.sources]]\ntopic = "u"\nmax_items = 3\n',
            "views.a.sources[1].max_items",
        ),
        (
            '[[views.a.sources]]\ntopic = "t"\nmerge = "list"\nmax_items = 0\n',
            "views.a.sources[0].max_items: expected 1 to",
        ),
        (
            f'[[views.a.sources]]\ntopic = "t"\nmerge = "list"\nmax_items = {LIST_ITEMS_MAX + 1}\n',
            "views.a.sources[0].max_items",
        ),
        (
            '[[views.a.sources]]\ntopic = "t"\nentity_id = "value."\n',
            "views.a.sources[0].entity_id",
        ),
        ('[[views.a.sources]]\ntopic = "t"\nentity_id = "id"\n', "views.a.sources[0].entity_id"),
        ('[[views.a.sources]]\ntopic = "no spaces"\n', "views.a.sources[0].topic"),
        ("[[views.a.sources]]\nfield = 'x'\n", "views.a.sources[0].topic"),
        (
            '[[views.a.sources]]\ntopic = "t"\nfilter = 1\n',
            "views.a.sources[0].filter: unknown key",
        ),
        (
            '[[views.a.sources]]\ntopic = "t"\non_tombstone = "keep"\n',
            "views.a.sources[0].on_tombstone",
        ),
        (
            '[[views.a.sources]]\ntopic = "t"\n[[views.a.sources]]\ntopic = "u"\nfield = "t"\n',
            "views.a.sources[1].field: 't' is already the field of sources[0]",
        ),
        ("[views.a]\n", "views.a.sources"),
        (
            '[views.a]\nfreshness_target_ms = 0\n[[views.a.sources]]\ntopic = "t"\n',
            "views.a.freshness_target_ms: expected 1 to",
        ),
        (
            '[views.a]\nfreshness_target_ms = "5s"\n[[views.a.sources]]\ntopic = "t"\n',
            "views.a.freshness_target_ms",
        ),
        ('[views.a]\nsources = "t"\n', "views.a.sources"),
        ('[views."a b"]\n', "views.a b: a view name"),
        ("title = 'x'\n", "unknown top-level key 'title'"),
        ("", "no [views.<name>] table"),
    ],
)
def test_a_bad_file_names_the_line_or_field(text: str, names: str) -> None:
    with pytest.raises(ViewsFileError) as refused:
        parse_views(text, "views.toml")
    assert str(refused.value).startswith("views.toml: ")
    assert names in str(refused.value)


def test_a_missing_file_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(ViewsFileError, match="nowhere.toml: No such file"):
        load_views(tmp_path / "nowhere.toml")
