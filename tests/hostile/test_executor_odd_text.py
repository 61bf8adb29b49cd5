"""Tool-call requests written straight to the requests topic whose JSON carries `\\ud800`
escapes (lone surrogates: text with no UTF-8 form) in the decision id, the caller, the
approver, the arguments' names and values, or the tool's name. Each is answered in the
ledger, the executor goes on to the next request, and its ledger API serves every entry
(as JSON with escapes) instead of failing on the text."""

from __future__ import annotations

from pathlib import Path

from confluent_kafka import Producer

from contextplane.services.actions import ledger
from contextplane.services.actions.client import ActionsClient
from tests.e2e.test_action_ledger import (  # noqa: F401 - the broker fixture
    TIMEOUT_S,
    broker_fixture,
    endpoint_and_tools,
    executor,
    ledger_entries,
)
from tests.support.broker import BrokerProcess
from tests.support.wait import wait_until

GOOD = '{"decision_id": "d", "tool": "refund", "arguments": {"amount": 1}}'
ODD = {
    b"k-decision": GOOD.replace('"d"', '"\\ud800"'),
    b"k-caller": GOOD[:-1] + ', "caller": "\\udfff"}',
    b"k-approver": GOOD[:-1] + ', "approved_by": "a\\ud800"}',
    b"k-argument-name": GOOD.replace('"amount": 1', '"amount": 1, "\\ud800": 2'),
    b"k-argument-value": GOOD.replace('"amount": 1', '"amount": 1, "note": "\\udc00"'),
    b"k-tool": GOOD.replace('"refund"', '"refund\\ud800"'),
}


def test_requests_with_lone_surrogates_are_answered_and_served(
    broker: BrokerProcess, tmp_path: Path
) -> None:
    endpoint, tools = endpoint_and_tools(tmp_path, honours_key=True)
    running = executor(broker, tools, tmp_path, "executor").start()
    client = ActionsClient(broker.bootstrap, running.url)
    try:
        producer = Producer({"bootstrap.servers": broker.bootstrap})
        for key, value in ODD.items():
            producer.produce(ledger.REQUESTS_TOPIC, key=key, value=value.encode())
        producer.flush(TIMEOUT_S)
        # The next request is served: the odd ones stopped nothing.
        assert client.call("refund", {"amount": 1}, "k-after").state == "done"

        def answered() -> dict[tuple[str, ...], dict[str, object]] | None:
            found = ledger_entries(broker.bootstrap)
            keys = {k[1] for k in found}
            return found if all(k.decode() in keys for k in ODD) else None

        found = wait_until(answered, TIMEOUT_S, "every odd request answered in the ledger")
        rejected = {k[1]: e["reason"] for k, e in found.items() if k[0] == "rejected"}
        assert rejected == {"k-tool": "unknown tool 'refund\\ud800'"}
        states = {}
        for key in ODD.keys() - {b"k-tool"}:
            got = client.entry(key.decode())
            assert got is not None, key
            states[key.decode()] = got["entry"]["state"]
        # Cedar cannot take such text as an argument: the call is denied, fail closed.
        assert states == {
            "k-decision": "done",
            "k-caller": "done",
            "k-approver": "done",
            "k-argument-name": "denied",
            "k-argument-value": "denied",
        }
        assert dict(endpoint.effects) == {
            k: 1 for k in ("k-decision", "k-caller", "k-approver")
        } | {"k-after": 1}
        assert running.process is not None and running.process.poll() is None
        assert "Traceback" not in running.log_text()
    finally:
        client.close()
        running.stop()
        endpoint.close()
