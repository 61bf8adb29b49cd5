"""bench/security.py runs end to end on a tiny workload (its figures are never judged
here): every configuration produces and reads back, and the summary has each one's
ratios to PLAINTEXT."""

from __future__ import annotations

from pathlib import Path

from bench import security


def test_the_security_benchmark_measures_every_configuration(tmp_path: Path) -> None:
    summary = security.run(rounds=1, megabytes=0.5, where=tmp_path)
    assert set(summary["medians"]) == set(security.CONFIGS)
    others = set(security.CONFIGS) - {"PLAINTEXT"}
    assert set(summary["ratios_to_plaintext"]) == set(summary["paired_ratios"]) == others
    for figures in summary["medians"].values():
        assert set(figures) == set(security.METRICS)
        assert figures["produce_mb_per_s"] > 0 and figures["fetch_mb_per_s"] > 0
        # CPU time comes in 10 ms ticks: a tiny workload may cost none of them.
        assert figures["produce_cpu_s_per_mb"] >= 0 and figures["fetch_cpu_s_per_mb"] >= 0


def test_the_client_is_allowed_by_prefixed_acls_among_a_realistic_count() -> None:
    acls = security.acls()
    assert len(acls) == security.ACL_COUNT
    mine = [a for a in acls if a.principal == "User:ANONYMOUS"]
    assert {(str(a.restype), str(a.resource_pattern_type), a.name) for a in mine} == {
        ("ResourceType.TOPIC", "ResourcePatternType.PREFIXED", "bench-"),
        ("ResourceType.GROUP", "ResourcePatternType.PREFIXED", "bench-"),
    }
