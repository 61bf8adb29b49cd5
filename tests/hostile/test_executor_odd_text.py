"""Tool-call requests written straight to the requests topic whose JSON carries `\\ud800`
escapes (lone surrogates: text with no UTF-8 form) in the decision id, the caller, the
approver, the arguments' names and values, or the tool's name. Each is answered in the
ledger, the executor goes on to the next request, and its ledger API serves every entry
(as JSON with escapes) instead of failing on the text.

And a tool whose policy reads context, when the entity id in the arguments has no UTF-8
form or the context service's reply is not an answer (not JSON, or JSON of another
shape): the call is recorded `error` naming why, and the executor goes on. Each used to
stop the executor, which read the same request again at its restart and stopped again."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from contextplane.services.actions import ledger
from contextplane.services.actions.client import ActionsClient
from tests.e2e.test_action_ledger import (  # noqa: F401 - the broker fixture
    GOLD_TOOLS,
    TIMEOUT_S,
    broker_fixture,
    endpoint_and_tools,
    executor,
    ledger_entries,
)
from tests.support.actions import CountingEndpoint
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


class NotAContextService(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        body = b'{"view": 1}' if "shape" in self.path else b"<html>not json</html>"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture(name="not_context")
def not_context_fixture() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), NotAContextService)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_context_reads_that_cannot_be_made_are_errors_not_a_stop(
    broker: BrokerProcess, tmp_path: Path, not_context: str
) -> None:
    endpoint = CountingEndpoint(honours_key=True)
    tools = tmp_path / "tools.toml"
    tools.write_text(GOLD_TOOLS.format(url=endpoint.url))
    running = executor(broker, tools, tmp_path, "executor")
    running.extra_args = ["--context-url", not_context]
    running.start()
    client = ActionsClient(broker.bootstrap, running.url)
    requests = {
        b"k-surrogate": '{"decision_id": "d", "tool": "refund",'
        ' "arguments": {"account_id": "\\ud800", "amount": 1}}',
        b"k-not-json": '{"decision_id": "d", "tool": "refund",'
        ' "arguments": {"account_id": "a1", "amount": 1}}',
        b"k-shape": '{"decision_id": "d", "tool": "refund",'
        ' "arguments": {"account_id": "shape", "amount": 1}}',
    }
    try:
        producer = Producer({"bootstrap.servers": broker.bootstrap})
        for key, value in requests.items():
            producer.produce(ledger.REQUESTS_TOPIC, key=key, value=value.encode())
        producer.flush(TIMEOUT_S)
        after = client.call("refund", {"account_id": "a2", "amount": 1}, "k-after")
        assert after.state == "error"
        reasons = {}
        for key in requests:
            got = client.entry(key.decode())
            assert got is not None and got["entry"]["state"] == "error", (key, got)
            reasons[key.decode()] = got["entry"]["reason"]
        assert "no UTF-8" in reasons["k-surrogate"]
        assert "502" in reasons["k-not-json"] and "not JSON" in reasons["k-not-json"]
        assert "502" in reasons["k-shape"] and "not an entity answer" in reasons["k-shape"]
        assert not endpoint.effects
        assert running.process is not None and running.process.poll() is None
    finally:
        client.close()
        running.stop()
        endpoint.close()
