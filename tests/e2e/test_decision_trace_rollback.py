"""The trace after a rollback into Apache Kafka (README, "Cutover and rollback"): refund
decisions made on contextplane, then every copilot topic mirrored into Kafka 4.4 with
`contextplane mirror --mode copy` (the way back: Kafka takes no batches at given
offsets). Copy mode renumbers topics (the source's transaction markers are left out, the
mirror's own are added), so offsets a decision recorded may hold other records on Kafka.
The trace there finds the mirror's offset map (kept on Kafka, in its state topic) and
reads each recorded position where the map says it went: this test checks that every
record so read (changelog, source, request, write-back) is the one the trace found on
contextplane, by key, timestamp and size; that the decision and each call's ledger entry
and policy evaluation are found (by key) with the same contents; and that the read's
positions vector translates exactly."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from contextplane.cli.main import main
from harness import kafka_reference
from tests.e2e.test_decision_trace import child, running_copilot, trace
from tests.e2e.test_decision_trace_recovery import decide

COPILOT_TOPICS = (
    "crm.accounts|billing.entitlements|support.tickets|support.replies|ctx.changelog"
    "|copilot.decisions|copilot.tool-calls|copilot.ledger|copilot.policy-evaluations"
)


@pytest.fixture
def kafka(tmp_path: Path) -> Iterator[kafka_reference.KafkaHandle]:
    handle = kafka_reference.start(data_dir=tmp_path / "kafka", timeout=120)
    yield handle
    handle.stop()


@pytest.mark.slow
@pytest.mark.long  # ≈ 50 s with Kafka's start
def test_the_trace_on_kafka_after_a_rollback_is_never_silently_wrong(
    kafka: kafka_reference.KafkaHandle, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    decisions = [f"d-{n}" for n in range(4)]
    with running_copilot(tmp_path / "plane") as (copilot, _):
        for n, decision_id in enumerate(decisions):
            at = copilot.produce("crm.accounts", "a1", {"name": f"a1 v{n}", "tier": "gold"})
            decide(copilot, decision_id, at, 10 + n)
        here = {d: trace(copilot, d, capsys) for d in decisions}
        status = main(
            [
                "mirror",
                "--source-bootstrap-server",
                copilot.broker.bootstrap,
                "--bootstrap-server",
                kafka.bootstrap,
                "--topics-regex",
                COPILOT_TOPICS,
                "--mode",
                "copy",
                "--once",
            ]
        )
        capsys.readouterr()
        assert status == 0
    moved = 0
    for decision_id in decisions:
        there = trace(kafka.bootstrap, decision_id, capsys)
        assert there is not None and there["detail"]["outcome"] == "ok"
        assert "copied here by the copy mirror" in there["detail"]["offset_map"]
        [call_here], [call_there] = child(here[decision_id], "tool-call"), child(there, "tool-call")
        for kind in ("ledger-entry", "policy-evaluation"):
            [found] = child(call_there, kind)
            assert (
                found["status"] == "found"
                and found["detail"] == child(call_here, kind)[0]["detail"]
            )
        [read_here], [read_there] = child(here[decision_id], "read"), child(there, "read")
        [request_here], [request_there] = child(call_here, "request"), child(call_there, "request")
        pairs = [
            (child(read_here, "changelog-record")[0], child(read_there, "changelog-record")[0]),
            (child(read_here, "source-record")[0], child(read_there, "source-record")[0]),
            (request_here, request_there),
            (child(here[decision_id], "write-back")[0], child(there, "write-back")[0]),
        ]
        for link_here, link_there in pairs:
            # The record at the translated position is the one the source had there.
            assert link_here["status"] == "found" and link_there["status"] == "found", link_there
            for name in ("key", "timestamp_ms", "value_bytes"):
                assert link_there["detail"][name] == link_here["detail"][name]
            if link_there["where"] != link_here["where"]:
                assert link_there["detail"]["recorded_at"] == link_here["where"]
                moved += 1
        # The changelog record names the source record the answer named (source numbering).
        changelog_there = pairs[0][1]
        assert changelog_there["detail"]["changed_by"] == pairs[1][0]["where"]
        assert pairs[1][1]["detail"]["via"] == "changelog"
        assert (
            read_there["detail"].get("recorded_positions", read_here["where"])
            == (read_here["where"])
        )
        assert "positions_not_exact" not in read_there["detail"]
    # Copy renumbered some of them (the changelog's and the ledger's transaction markers).
    assert moved > 0
