"""The readiness scorecard: five categories, each green, yellow or red from its probes.

A category lists its probes, each essential or not. The rule (README, "evaluate"):
red when an essential probe failed; yellow when no essential one failed but an essential
one was not applicable (or not run), or a non-essential one failed; green otherwise (every
essential probe passed; a non-essential one may be n-a: a feature the cluster or the
command line does not offer, e.g. no schema registry given). A probe may count in several
categories (offsets by time shows offset control and what a rollback needs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from contextplane.cli.probes.base import FAIL, NOT_APPLICABLE, ProbeResult

GREEN, YELLOW, RED = "green", "yellow", "red"
NOT_RUN = "not run"

# category: ((probe, essential), ...) in the order shown.
CATEGORIES: dict[str, tuple[tuple[str, bool], ...]] = {
    "client-compatibility": (
        ("produce-fetch", True),
        ("transactions", True),
        ("topic-admin", True),
        ("compression-gzip", False),
        ("compression-snappy", False),
        ("compression-lz4", False),
        ("compression-zstd", False),
        ("schema-registry", False),
    ),
    "offset-control": (
        ("consumer-group", True),
        ("offsets-by-time", True),
        ("consumer-replay", True),
        ("restart", True),
    ),
    "connector-state": (
        ("connect-cluster", True),
        ("connectors", True),
    ),
    "governance": (
        ("acls", True),
        ("tls", True),
        ("audit-reads", False),
    ),
    "rollback": (
        ("offsets-by-time", True),
        ("group-offsets", True),
        ("consumer-replay", True),
    ),
}


@dataclass(frozen=True)
class Category:
    name: str
    status: str
    reason: str
    # (probe, essential, result or NOT_RUN, evidence)
    probes: tuple[tuple[str, bool, str, str], ...]

    def document(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "reason": self.reason,
            "probes": [
                {"name": name, "essential": essential, "result": result, "evidence": evidence}
                for name, essential, result, evidence in self.probes
            ],
        }

    def evidence(self) -> str:
        """One line: why the status, then each probe's result."""
        shown = ", ".join(
            f"{name}{'' if essential else '*'} {result}"
            for name, essential, result, _ in self.probes
        )
        return f"{self.reason}; {shown}"


def score(results: list[ProbeResult]) -> list[Category]:
    by_name = {result.name: result for result in results}
    categories = []
    for name, members in CATEGORIES.items():
        probes = tuple(
            (probe, essential, *_outcome(by_name.get(probe))) for probe, essential in members
        )
        categories.append(Category(name, *_status(probes), probes))
    return categories


def _outcome(result: ProbeResult | None) -> tuple[str, str]:
    if result is None:
        return NOT_RUN, "not run (--probe chose others)"
    return result.result, result.evidence


def _status(probes: tuple[tuple[str, bool, str, str], ...]) -> tuple[str, str]:
    def named(essential: bool, results: tuple[str, ...]) -> list[str]:
        return [p for p, e, r, _ in probes if e == essential and r in results]

    if failed := named(True, (FAIL,)):
        return RED, f"essential probe failed: {', '.join(failed)}"
    if missing := named(True, (NOT_APPLICABLE, NOT_RUN)):
        return YELLOW, f"not shown: {', '.join(missing)}"
    if failed := named(False, (FAIL,)):
        return YELLOW, f"failed: {', '.join(failed)}"
    if named(False, (NOT_APPLICABLE, NOT_RUN)):
        return GREEN, "every essential probe passed"
    return GREEN, "every probe passed"
