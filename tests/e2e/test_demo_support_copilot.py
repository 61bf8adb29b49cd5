"""`contextplane demo support-copilot --output json`, run as a user runs it: once on its
embedded broker (a child process it starts and stops), once against a broker the test
started (`--bootstrap-server`), once against Apache Kafka. The summary is checked against
what the scenario's rules and policies imply (refunds up to 100 auto-approved for gold
accounts, up to 1,000 awaiting approval, more denied; an account with an open incident
escalated; every ticket updated) and, on the test's broker, against what the topics hold
afterwards."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from contextplane.cli.main import main
from contextplane.services.actions.ledger import LEDGER_TOPIC, REQUESTS_TOPIC
from contextplane.services.demo import scenario
from harness import kafka_reference
from tests.support.cli import sigint_as_from_a_terminal
from tests.support.inprocess import InProcessBroker

pytestmark = pytest.mark.slow  # each run of the demo ≈ 25 s

TIMEOUT_S = 30
# What the rules imply for each ticket: its tool calls and their ledger states.
EXPECTED = {
    "T-1001": [("refund", "done"), ("update_ticket", "done")],  # gold, 40
    "T-1002": [("refund", "awaiting-approval"), ("update_ticket", "done")],  # gold, 250
    "T-1003": [("escalate", "done"), ("update_ticket", "done")],  # open incident INC-7
    "T-1004": [("refund", "awaiting-approval"), ("update_ticket", "done")],  # standard, 30
    "T-1005": [("refund", "denied"), ("update_ticket", "done")],  # 5000: past approval
    "T-1006": [("update_ticket", "done")],  # a question
}
EXECUTED = sum(state == "done" for calls in EXPECTED.values() for _, state in calls)
# On its embedded broker the demo approves the refund the threshold held (250 > 100).
APPROVED = "T-1002"
APPROVER = "User:support-lead"


def run_demo(capsys: pytest.CaptureFixture[str], *more: str) -> tuple[dict[str, Any], str]:
    status = main(["demo", "support-copilot", "--output", "json", *more])
    out, err = capsys.readouterr()
    assert status == 0, err
    return json.loads(out), err


def links(tree: dict[str, Any]) -> list[dict[str, Any]]:
    return [tree, *(link for child in tree["children"] for link in links(child))]


def check_summary(summary: dict[str, Any], *, approved: bool) -> None:
    decisions = summary["decisions"]
    assert [d["ticket_id"] for d in decisions] == [t["ticket_id"] for t in scenario.TICKETS]
    assert len({d["decision_id"] for d in decisions}) == len(scenario.TICKETS)
    for decision in decisions:
        calls = [(c["tool"], c["state"]) for c in decision["tool_calls"]]
        assert calls == EXPECTED[decision["ticket_id"]], decision
    assert summary["tool_calls_executed"] == EXECUTED == 8
    # The approval's call is counted at the endpoint after the decisions' 8.
    assert sum(summary["tool_calls_by_tool"].values()) == EXECUTED + approved
    replay = summary["replay"]
    assert replay["decisions"] == len(decisions) and replay["tool_calls"] == 0
    assert replay["differing"] == 0 and replay["differing_decisions"] == []
    assert [r["decision_id"] for r in replay["results"]] == [d["decision_id"] for d in decisions]
    # The traced decision: the auto-approved refund, every link it recorded followed.
    traced = summary["trace"]
    [refunded] = [d for d in decisions if d["ticket_id"] == "T-1001"]
    tree = traced["tree"]
    assert traced["decision_id"] == tree["label"] == refunded["decision_id"]
    assert tree["where"] == "copilot.decisions[{partition}]@{offset}".format(**refunded["decision"])
    kinds = {link["kind"] for link in links(tree)}
    assert {
        "decision",
        "read",
        "changelog-record",
        "source-record",
        "tool-call",
        "request",
        "ledger-entry",
        "policy-evaluation",
        "write-back",
    } <= kinds
    [write_back] = [link for link in links(tree) if link["kind"] == "write-back"]
    assert write_back["where"] == "support.replies[{partition}]@{offset}".format(
        **refunded["reply"]
    )
    evaluations = [link for link in links(tree) if link["kind"] == "policy-evaluation"]
    assert {e["detail"]["decision"] for e in evaluations} == {"allow"}
    if approved:
        check_approval(summary)
    else:  # no approver's login on a cluster the demo did not set up
        assert "embedded broker only" in summary["approval"]["skipped"]


def check_approval(summary: dict[str, Any]) -> None:
    """The held refund approved by the approver, called once, and its decision's trace
    naming who approved it: the ledger entry `done`, approved_by the approver, after the
    evaluation that held it and the one that let it through."""
    approval = summary["approval"]
    [held] = [d for d in summary["decisions"] if d["ticket_id"] == APPROVED]
    [refund] = [c for c in held["tool_calls"] if c["tool"] == "refund"]
    assert refund["state"] == "awaiting-approval"  # as the decision recorded it
    assert approval["decision_id"] == held["decision_id"] and approval["key"] == refund["key"]
    assert approval["state"] == "done" and approval["approved_by"] == APPROVER
    assert approval["tool_calls"] == 1
    tree = approval["trace"]["tree"]
    assert tree["label"] == held["decision_id"] and missing_links(tree) == []
    [call] = [c for c in tree["children"] if c["detail"].get("key") == refund["key"]]
    [entry] = [c for c in call["children"] if c["kind"] == "ledger-entry"]
    assert entry["detail"]["state"] == "done" and entry["detail"]["approved_by"] == APPROVER
    evaluations = [c["detail"] for c in call["children"] if c["kind"] == "policy-evaluation"]
    assert [e["decision"] for e in evaluations] == ["awaiting-approval", "allow"]


def missing_links(tree: dict[str, Any]) -> list[str]:
    return [f"{link['label']}: {link['why']}" for link in links(tree) if link["status"] != "found"]


def children_of(pid: int) -> list[str]:
    """The command lines of `pid`'s live child processes (Linux /proc)."""
    return [cmdline for _, cmdline in children(pid)]


def children(pid: int) -> list[tuple[int, str]]:
    """`pid`'s live child processes and their command lines (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        if int(ppid) == pid and state != "Z":
            found.append((int(entry.name), cmdline))
    return found


def test_the_demo_on_its_embedded_broker(capsys: pytest.CaptureFixture[str]) -> None:
    summary, err = run_demo(capsys)
    assert "starting an embedded broker" in err and summary["embedded_broker"] is True
    check_summary(summary, approved=True)
    # A contextplane broker keeps read receipts: the trace found every link, the
    # consumer that picked the source record up among them.
    assert missing_links(summary["trace"]["tree"]) == []
    receipts = [link for link in links(summary["trace"]["tree"]) if link["kind"] == "read-receipt"]
    assert any(r["detail"]["client_id"] == "contextplane-demo-context-sources" for r in receipts)
    assert not [c for c in children_of(os.getpid()) if "contextplane.cli.launch" in c]


def test_the_demo_against_a_given_cluster(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broker = InProcessBroker(tmp_path / "broker").start()
    try:
        summary, err = run_demo(capsys, "--bootstrap-server", broker.bootstrap)
        assert "starting an embedded broker" not in err and summary["embedded_broker"] is False
        assert summary["bootstrap_server"] == broker.bootstrap
        check_summary(summary, approved=False)
        # What the cluster holds: one request per call made live (none by the replay), a
        # `done` ledger entry per call the endpoint counted, one reply per ticket, one
        # replayed decision per decision.
        calls = sum(len(d["tool_calls"]) for d in summary["decisions"])
        assert len(read_all(broker.bootstrap, REQUESTS_TOPIC)) == calls
        done = {
            json.loads(message.value())["key"]
            for message in read_all(broker.bootstrap, LEDGER_TOPIC)
            if message.value() and json.loads(message.value()).get("state") == "done"
        }
        assert len(done) == summary["tool_calls_executed"]
        replies = [json.loads(m.value()) for m in read_all(broker.bootstrap, "support.replies")]
        assert [r["decision_id"] for r in replies] == [
            d["decision_id"] for d in summary["decisions"]
        ]
        assert len(read_all(broker.bootstrap, summary["replay"]["topic"])) == len(replies)
    finally:
        broker.stop()


@pytest.mark.long  # ≈ 50 s with Kafka's start; the run on the test's own broker is CI's
def test_the_demo_against_apache_kafka(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Every service is an ordinary Kafka client: the same summary; the one link a trace
    cannot follow there is the read receipt, which only a contextplane broker keeps."""
    kafka = kafka_reference.start(data_dir=tmp_path / "kafka", timeout=120)
    try:
        summary, _ = run_demo(capsys, "--bootstrap-server", kafka.bootstrap)
    finally:
        kafka.stop()
    check_summary(summary, approved=False)
    [missing] = missing_links(summary["trace"]["tree"])
    assert "__contextplane_read_receipts: UNKNOWN_TOPIC_OR_PART" in missing, missing


def test_bad_arguments_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "support-copilot", "--timeout", "0"]) == 2
    assert "--timeout: expected more than 0" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        main(["demo", "no-such-scenario"])
    assert exited.value.code == 2


def test_a_run_out_of_time_names_its_step_and_leaves_no_child(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """0.5 s is far less than the whole demo: it ends in an early step (the broker's start,
    or the topics when the broker started quickly), named, exit 1, and the broker child it
    started is stopped."""
    assert main(["demo", "support-copilot", "--timeout", "0.5"]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert re.match(
        r"contextplane demo: (broker: the broker was not ready in time"
        r"|(broker|topics|feed|context service): the demo's 0\.5 s ran out)",
        err,
    ), err
    assert not [c for c in children_of(os.getpid()) if "contextplane.cli.launch" in c]


def test_ctrl_c_stops_every_child(tmp_path: Path) -> None:
    """SIGINT (what Ctrl-C sends) once the services run: exit 1 naming the step it
    interrupted, and the broker, context service and executor it started all gone."""
    demo = subprocess.Popen(
        [sys.executable, "-m", "contextplane.cli.launch", "demo", "support-copilot"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        preexec_fn=sigint_as_from_a_terminal,
    )
    try:
        assert demo.stdout is not None
        for line in demo.stdout:  # the demo's own --timeout ends it if it never gets there
            if line.startswith("context service on"):
                break
        started = [
            pid for pid, cmdline in children(demo.pid) if "contextplane.cli.launch" in cmdline
        ]
        assert len(started) == 3, started
        demo.send_signal(signal.SIGINT)
        _, err = demo.communicate(timeout=90)
    finally:
        demo.kill()
    assert demo.returncode == 1
    assert err.strip().splitlines()[-1].endswith(": interrupted"), err
    assert [pid for pid in started if Path(f"/proc/{pid}").exists()] == []


def read_all(bootstrap: str, topic: str) -> list[Any]:
    """Every committed record of partition 0 of `topic`."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "test-demo-reader",
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
            "fetch.wait.max.ms": 10,  # the end reported at once, not after a 500-ms empty fetch
        }
    )
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), TIMEOUT_S)
        if high <= low:
            return []
        consumer.assign([TopicPartition(topic, 0, low)])
        records = []
        while True:
            message = consumer.poll(TIMEOUT_S)
            assert message is not None, f"{topic}: no record within {TIMEOUT_S} s"
            if message.error() is not None:
                assert message.error().code() == -191, message.error()  # _PARTITION_EOF
                return records
            records.append(message)
    finally:
        consumer.close()
