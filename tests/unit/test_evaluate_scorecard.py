"""The readiness scorecard's rule: red when an essential probe failed, yellow when one
was not shown (n-a or not run) or a non-essential one failed, green otherwise."""

from __future__ import annotations

from contextplane.cli.probes import PROBES
from contextplane.cli.probes.base import ProbeResult
from contextplane.cli.probes.scorecard import CATEGORIES, score


def results(**outcomes: str) -> list[ProbeResult]:
    """Every probe passed but those named (probe_name="fail" with _ for -)."""
    named = {name.replace("_", "-"): result for name, result in outcomes.items()}
    return [
        ProbeResult(name, named.get(name, "pass"), f"{name} evidence", 0.1)
        for name in PROBES
        if named.get(name) != "absent"
    ]


def statuses(**outcomes: str) -> dict[str, str]:
    return {category.name: category.status for category in score(results(**outcomes))}


def test_every_category_names_only_probes_that_exist() -> None:
    assert {probe for members in CATEGORIES.values() for probe, _ in members} <= set(PROBES)


def test_every_probe_passed_is_green_everywhere_with_each_probe_as_evidence() -> None:
    categories = score(results())
    assert {c.status for c in categories} == {"green"}
    rollback = next(c for c in categories if c.name == "rollback")
    assert rollback.reason == "every probe passed"
    assert rollback.document()["probes"][1] == {
        "name": "group-offsets",
        "essential": True,
        "result": "pass",
        "evidence": "group-offsets evidence",
    }
    assert rollback.evidence() == (
        "every probe passed; offsets-by-time pass, group-offsets pass, consumer-replay pass"
    )


def test_an_essential_failure_is_red_in_each_category_it_counts_in() -> None:
    got = statuses(offsets_by_time="fail")
    assert got["offset-control"] == got["rollback"] == "red"
    assert got["client-compatibility"] == "green"


def test_not_shown_or_a_non_essential_failure_is_yellow_a_non_essential_na_green() -> None:
    assert statuses(connectors="n-a")["connector-state"] == "yellow"
    assert statuses(restart="absent")["offset-control"] == "yellow"
    assert statuses(compression_zstd="fail")["client-compatibility"] == "yellow"
    lenient = score(results(schema_registry="n-a"))[0]
    assert (lenient.status, lenient.reason) == ("green", "every essential probe passed")
    assert "schema-registry* n-a" in lenient.evidence()
    worst = score(results(transactions="fail", compression_lz4="fail", acls="n-a"))
    assert [(c.name, c.status, c.reason) for c in worst if c.status != "green"] == [
        ("client-compatibility", "red", "essential probe failed: transactions"),
        ("governance", "yellow", "not shown: acls"),
    ]
