"""A connection's zone from its client.id or its Fetch's rack_id, and the bounds on both
(broker/zones.py), and the measured cross-zone shares `contextplane cost` reads."""

from __future__ import annotations

import pytest

from contextplane.broker.zones import (
    OTHER,
    RACK_CHARS_MAX,
    UNKNOWN,
    ZONES_TRACKED_MAX,
    ZoneLedger,
    client_id_zone,
)
from contextplane.cli.cost_inputs import GIB, ZONE_BYTES, cross_zone


@pytest.mark.parametrize(
    ("client_id", "zone"),
    [
        ("contextplane_az=us-east-1a", "us-east-1a"),
        ("billing,contextplane_az=use1-az1", "use1-az1"),
        ("app ws_az=europe-west4-b,ws_si=x", "europe-west4-b"),  # WarpStream's token
        ("automq_az=cn-hangzhou-h;other", "cn-hangzhou-h"),  # AutoMQ's token
        ("app-contextplane_az=a", None),  # inside another word: not a token
        ("contextplane_az=", None),
        ('contextplane_az=a"b', None),  # characters no zone name has
        ("contextplane_az=" + "a" * (RACK_CHARS_MAX + 1), None),  # too long: not cut short
        ("contextplane_az=" + "a" * RACK_CHARS_MAX, "a" * RACK_CHARS_MAX),
        ("consumer-1", None),
        ("contextplane_az=unknown", None),  # the counters' own words
        ("contextplane_az=other", None),
        ("", None),
        (None, None),
    ],
)
def test_client_id_names_a_zone(client_id: str | None, zone: str | None) -> None:
    assert client_id_zone(client_id) == zone


def test_fetch_rack_names_an_unknown_zone_only() -> None:
    ledger = ZoneLedger()
    named = ledger.for_client_id("x,contextplane_az=a")
    assert ledger.for_fetch(named, "b") is named  # the client.id's zone stands
    unknown = ledger.for_client_id("x")
    assert unknown is ledger.unknown
    assert ledger.for_fetch(unknown, "") is unknown
    assert ledger.for_fetch(unknown, "b" * (RACK_CHARS_MAX + 1)) is unknown
    assert ledger.for_fetch(unknown, "b").zone == "b"


def test_zones_past_the_bound_share_other() -> None:
    ledger = ZoneLedger()
    for n in range(ZONES_TRACKED_MAX + 10):
        ledger.cell(f"z{n}").bytes_in += 1
    assert len(ledger.cells) == ZONES_TRACKED_MAX + 1
    assert ledger.cells[OTHER].bytes_in == 10


def test_relations_to_the_broker_rack() -> None:
    ledger = ZoneLedger()
    ledger.cell("a").bytes_in = 5
    ledger.cell("b").bytes_out = 7
    ledger.unknown.bytes_in = 3
    assert sorted(ledger.rows("a")) == [
        ("a", "same", 5, 0),
        ("b", "cross", 0, 7),
        (UNKNOWN, UNKNOWN, 3, 0),
    ]
    assert {row[1] for row in ledger.rows(None)} == {UNKNOWN}  # a broker with no rack
    for n in range(ZONES_TRACKED_MAX):
        ledger.cell(f"z{n}")
    # "other" may hold the broker's own rack unless that has its own counters.
    assert ("other", "cross", 0, 0) in ledger.rows("a")
    assert ("other", UNKNOWN, 0, 0) in ledger.rows("c")


def _samples(**counts: float) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    samples = {}
    for key, count in counts.items():
        direction, relation = key.split("_")
        labels = {"direction": direction, "zone_relation": relation, "client_zone": "z"}
        samples[(ZONE_BYTES, tuple(sorted(labels.items())))] = count
    return samples


def test_cross_zone_shares_from_counters() -> None:
    crossing = cross_zone(_samples(in_same=GIB, in_cross=3 * GIB, in_unknown=GIB), "here")
    assert crossing is not None
    assert crossing.produced == 0.75 and crossing.read is None  # nothing read: modelled
    assert "1 GiB of clients in no known zone left out" in crossing.source
    assert cross_zone(_samples(in_unknown=GIB, out_unknown=GIB), "here") is None
    assert cross_zone({}, "here") is None
