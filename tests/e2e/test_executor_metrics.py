"""The executor's /metrics against a broker process, real confluent-kafka clients and tool
endpoints on 127.0.0.1: each request's recorded outcome counted once under its tool, the
endpoint calls by answer (an answer, a refused connection, a call past its time bound),
the policy decisions, the ledger's calls waiting by state; hostile records (a tool name
made to break the exposition, a ledger record of a made-up state and kind) add no label
value; the dashboard's executor panels and the executor's alert rules name only what the
scrape exports."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

from confluent_kafka import Producer
from prometheus_client.parser import text_string_to_metric_families

from contextplane.services.actions import ledger
from contextplane.services.actions.client import ActionsClient
from tests.e2e.test_action_ledger import broker_fixture  # noqa: F401 - the broker fixture
from tests.support.actions import CountingEndpoint, ExecutorProcess
from tests.support.broker import BrokerProcess, free_port
from tests.support.prometheus_queries import (
    alert_queries,
    check_queries,
    dashboard_queries,
    exported,
)
from tests.support.wait import wait_until

TIMEOUT_S = 60
HOSTILE_TOOL = 'evil"} 1\nprocess_fake{x="'

TOOLS = """
[tools.refund]
endpoint = "{refund}"
idempotent = true
timeout_ms = 60000
policy = '''permit(principal, action, resource) when {{ context.arguments.amount <= 100 }};'''
approval_policy = '''
permit(principal, action, resource) when {{ context.arguments.amount <= 1000 }};
'''

[tools.notify]
endpoint = "{notify}"
idempotent = false
timeout_ms = 1000
policy = '''permit(principal, action, resource);'''

[tools.down]
endpoint = "http://127.0.0.1:{closed}/act"
idempotent = true
timeout_ms = 5000
policy = '''permit(principal, action, resource);'''
"""

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str) -> tuple[str, Samples]:
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = response.read().decode()
    samples = {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    return text, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def test_the_executor_counts_each_outcome_under_configured_names_only(
    broker: BrokerProcess, tmp_path: Path
) -> None:
    refund = CountingEndpoint(honours_key=True)
    notify = CountingEndpoint(honours_key=False)
    notify.hold.add("n-1")  # answered after the tool's 1-s bound: interrupted
    tools = tmp_path / "tools.toml"
    tools.write_text(TOOLS.format(refund=refund.url, notify=notify.url, closed=free_port()))
    running = ExecutorProcess(broker.bootstrap, tools, tmp_path, tmp_path / "executor.log")
    running.start()
    client = ActionsClient(broker.bootstrap, running.url)
    try:
        _, before = scrape(running.url)
        for outcome in ("done", "replayed", "denied", "error", "unknown"):
            assert (
                value(before, "contextplane_executor_calls_total", tool="down", outcome=outcome)
                == 0
            )

        states = [
            client.call("refund", {"amount": 10}, "r-1").state,
            client.call("refund", {"amount": 10}, "r-1").state,
            client.call("refund", {"amount": 5000}, "r-2").state,
            client.call("refund", {"amount": 500}, "r-3").state,
            client.call("refund", {"amount": 99}, "r-1").state,
            client.call("down", {}, "d-1").state,
            client.call("notify", {}, "n-1").state,
        ]
        assert states == [
            "done",
            "done",
            "denied",
            "awaiting-approval",
            "conflict",
            "error",
            "unknown",
        ]
        hostile = Producer({"bootstrap.servers": broker.bootstrap})
        request = {"decision_id": "x", "tool": HOSTILE_TOOL, "arguments": {}}
        hostile.produce(ledger.REQUESTS_TOPIC, key=b"h-1", value=json.dumps(request).encode())
        hostile.produce(ledger.REQUESTS_TOPIC, key=None, value=b"{}")
        hostile.produce(ledger.REQUESTS_TOPIC, key=b"h-2", value=b"not json")
        # Anyone able to write the ledger topic: a state and a key kind the executor never writes.
        weird = {"state": HOSTILE_TOOL, "tool": HOSTILE_TOOL, "at_ms": 1}
        hostile.produce(
            ledger.LEDGER_TOPIC, key=b'["call","w-1"]', value=json.dumps(weird).encode()
        )
        hostile.produce(ledger.LEDGER_TOPIC, key=json.dumps([HOSTILE_TOOL]).encode(), value=b"{}")
        assert hostile.flush(TIMEOUT_S) == 0

        def settled() -> tuple[str, Samples] | None:
            text, samples = scrape(running.url)
            consumed = "contextplane_executor_records_consumed_total"
            lag = (
                "contextplane_executor_lag_records",
                frozenset({("topic", ledger.REQUESTS_TOPIC), ("partition", "0")}),
            )
            done = value(samples, consumed, topic=ledger.REQUESTS_TOPIC) == 10
            seen = value(samples, "contextplane_executor_ledger_entries", kind="other") == 1
            # The last request record's outcome, counted after its read: all are counted.
            rejected = "contextplane_executor_requests_rejected_total"
            done = done and value(samples, rejected, reason="malformed") == 1
            return (text, samples) if done and seen and samples.get(lag) == 0 else None

        text, samples = wait_until(settled, TIMEOUT_S, "the executor read every record")
    finally:
        client.close()
        running.stop()
        refund.close()
        notify.close()

    calls = {
        (dict(labels)["tool"], dict(labels)["outcome"]): count
        for (name, labels), count in samples.items()
        if name == "contextplane_executor_calls_total" and count
    }
    assert calls == {
        ("refund", "done"): 1,
        ("refund", "replayed"): 1,
        ("refund", "denied"): 1,
        ("refund", "awaiting-approval"): 1,
        ("refund", "conflict"): 1,
        ("down", "error"): 1,
        ("notify", "unknown"): 1,
    }
    endpoint = {
        (dict(labels)["tool"], dict(labels)["result"]): count
        for (name, labels), count in samples.items()
        if name == "contextplane_executor_endpoint_calls_total" and count
    }
    assert endpoint == {("refund", "2xx"): 1, ("down", "not_sent"): 1, ("notify", "interrupted"): 1}
    seconds = "contextplane_executor_endpoint_call_seconds"
    assert value(samples, seconds + "_count", tool="notify") == 1
    assert value(samples, seconds + "_sum", tool="notify") >= 1.0  # its time bound
    assert value(samples, seconds + "_bucket", tool="notify", le="0.5") == 0
    decisions = "contextplane_executor_policy_decisions_total"
    assert value(samples, decisions, tool="refund", decision="allow") == 1
    assert value(samples, decisions, tool="refund", decision="deny") == 1
    assert value(samples, decisions, tool="refund", decision="awaiting-approval") == 1
    assert value(samples, decisions, tool="down", decision="allow") == 1
    rejected = "contextplane_executor_requests_rejected_total"
    assert [
        value(samples, rejected, reason=r) for r in ("unknown_tool", "no_key", "malformed")
    ] == [
        1,
        1,
        1,
    ]
    waiting = "contextplane_executor_ledger_calls"
    for state in ("done", "denied", "awaiting-approval", "error", "unknown", "other"):
        assert value(samples, waiting, state=state) == 1, state
    assert value(samples, waiting, state="started") == 0
    assert value(samples, "contextplane_executor_ledger_entries", kind="rejected") == 2
    assert value(samples, "contextplane_executor_assigned_partitions") == 1
    assert value(samples, "contextplane_executor_transactions_total", result="aborted") == 0
    assert value(samples, "contextplane_executor_ledger_index_bytes", kind="used") > 0
    assert ("process_resident_memory_bytes", frozenset()) in samples
    # Label values: the tools file's names and fixed sets, never a record's text.
    assert "evil" not in text and "process_fake" not in text
    tools_seen = {dict(labels)["tool"] for (_, labels) in samples if "tool" in dict(labels)}
    assert tools_seen == {"refund", "notify", "down"}

    names = exported(text)
    check_queries(alert_queries("contextplane-executor"), names, "the executor's alert rules")
    check_queries(dashboard_queries("executor"), names, "the dashboard's executor panels")
