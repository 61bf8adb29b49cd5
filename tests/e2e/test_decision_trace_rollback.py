"""The trace after a rollback into Apache Kafka (README, "Cutover and rollback"): refund
decisions made on contextplane, then every copilot topic mirrored into Kafka 4.4 with
`contextplane mirror --mode copy` (the way back: Kafka takes no batches at given
offsets). Copy mode renumbers topics (the source's transaction markers are left out, the
mirror's own are added), so offsets a decision recorded may hold other records on Kafka.
What the trace there still guarantees, and this test checks: the decision and each call's
ledger entry and policy evaluation are found (by key, not offset), with the same
contents; and the changelog link is never silently wrong: found only when the record
there is the read's entity in the state the answer named, else missing with why (the
source is then followed from the answer). Records read at a recorded offset (source,
request, write-back) are not checked: RFC 0006, "Producers, recovery and rollback in
the trace as built", says what is not built."""

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
    for decision_id in decisions:
        there = trace(kafka.bootstrap, decision_id, capsys)
        assert there is not None and there["detail"]["outcome"] == "ok"
        [call_here], [call_there] = child(here[decision_id], "tool-call"), child(there, "tool-call")
        for kind in ("ledger-entry", "policy-evaluation"):
            [found] = child(call_there, kind)
            assert (
                found["status"] == "found"
                and found["detail"] == child(call_here, kind)[0]["detail"]
            )
        [read] = child(there, "read")
        [changelog] = child(read, "changelog-record")
        [source] = child(read, "source-record")
        if changelog["status"] == "found":  # then it is the entity's, in the state answered
            assert changelog["detail"]["key"] == '["entity","account","a1"]'
            [answered] = child(child(here[decision_id], "read")[0], "source-record")
            assert changelog["detail"]["changed_by"] == answered["where"]
            assert source["detail"]["via"] == "changelog"
        else:
            assert changelog["why"] and source["detail"].get("via", "answer") == "answer"
