"""The context service under abuse: oversized and malformed bodies, a wait bound asked
past its limit, fences on partitions it does not read, and source records that do not
parse as the view declares (skipped and counted; the service keeps applying)."""

from __future__ import annotations

import http.client
import json
import socket
from typing import Any

from confluent_kafka import Producer

from contextplane.clock import SystemClock
from contextplane.services.context.app import BODY_BYTES_MAX, BODY_READ_S
from contextplane.services.context.client import ContextClient
from contextplane.services.context.merge import STATE_BYTES_MAX
from contextplane.services.context.service import FENCE_WAIT_MS_MAX
from tests.support.broker import BrokerProcess
from tests.support.context import (  # noqa: F401 - fixtures
    TIMEOUT_S,
    ContextProcess,
    broker_fixture,
    service_fixture,
    views_fixture,
)


def request(
    service: ContextProcess,
    method: str,
    path: str,
    body: bytes | None = None,
    chunked: bool = False,
) -> tuple[int, str, dict[str, Any]]:
    """(status, content type, JSON body) of one exchange on its own connection."""
    connection = http.client.HTTPConnection("127.0.0.1", service.port, timeout=TIMEOUT_S)
    try:
        if chunked:
            assert body is not None
            connection.putrequest(method, path)
            connection.putheader("Transfer-Encoding", "chunked")
            connection.endheaders()
            for at in range(0, len(body), 16 * 1024):
                piece = body[at : at + 16 * 1024]
                connection.send(b"%x\r\n%s\r\n" % (len(piece), piece))
            connection.send(b"0\r\n\r\n")
        else:
            connection.request(method, path, body=body)
        response = connection.getresponse()
        return response.status, response.getheader("content-type", ""), json.loads(response.read())
    finally:
        connection.close()


def get(service: ContextProcess, body: Any) -> tuple[int, str]:
    status, kind, problem = request(
        service, "POST", "/v1/views/account/get", json.dumps(body).encode()
    )
    return status, problem.get("type", "") if status >= 400 else ""


def test_bodies_and_bounds_are_refused_with_problems(service: ContextProcess) -> None:
    big = b'{"entity": "' + b"x" * BODY_BYTES_MAX + b'"}'
    status, content_type, problem = request(service, "POST", "/v1/views/account/get", big)
    assert (status, problem["type"]) == (413, "/problems/body-too-large")
    assert content_type == "application/problem+json"
    # Without a Content-Length: counted as it arrives.
    status, _, problem = request(service, "POST", "/v1/views/account/get", big, chunked=True)
    assert (status, problem["type"]) == (413, "/problems/body-too-large")

    # A wait longer than the bound is refused, not clamped (the caller would believe it).
    assert get(service, {"entity": "a1", "timeout_ms": FENCE_WAIT_MS_MAX + 1}) == (
        400,
        "/problems/bad-fence",
    )
    assert get(service, {"entity": "a1", "timeout_ms": -1}) == (400, "/problems/bad-fence")
    assert get(service, {"entity": "a1", "timeout_ms": 1e30}) == (400, "/problems/bad-request")
    assert get(service, {"entity": "a1", "timeout_ms": True}) == (400, "/problems/bad-request")
    fence = {"entity": "a1", "min_offsets": {"crm.accounts": {"0": 1}}, "timeout_ms": 0}
    assert get(service, fence) == (504, "/problems/fence-timeout")
    for min_offsets in (
        [1],
        {"crm.accounts": 5},
        {"crm.accounts": {"zero": 1}},
        {"crm.accounts": {"-1": 1}},
        {"crm.accounts": {"99999999999999999999": 1}},
        {"crm.accounts": {"0": "1"}},
    ):
        assert get(service, {"entity": "a1", "min_offsets": min_offsets}) == (
            400,
            "/problems/bad-request",
        ), min_offsets
    assert get(service, {"entity": "a1", "min_offsets": {"crm.accounts": {"0": -5}}}) == (
        400,
        "/problems/bad-fence",
    )
    too_wide = {"support.tickets": {str(p): 0 for p in range(1_001)}}
    assert get(service, {"entity": "a1", "min_offsets": too_wide}) == (400, "/problems/bad-fence")
    assert get(service, {"entity": ""}) == (400, "/problems/bad-request")
    assert get(service, ["a1"]) == (400, "/problems/bad-request")
    status, _, problem = request(service, "POST", "/v1/views/account/get", b"{not json")
    assert (status, problem["type"]) == (400, "/problems/bad-request")
    status, _, problem = request(service, "POST", "/v1/views/account/get", b"[" * 60_000)
    assert (status, problem["type"]) == (400, "/problems/bad-request")

    status, _, problem = request(service, "GET", "/v1/views/nope/entities/a1")
    assert (status, problem["type"]) == (404, "/problems/unknown-view")
    assert "views: account" in problem["detail"]
    status, content_type, _ = request(service, "GET", "/v2/anything")
    assert (status, content_type) == (404, "application/problem+json")
    status, _, _ = request(service, "DELETE", "/v1/views")
    assert status == 405
    # Still serving.
    assert ContextClient(service.url).get("account", "a1").view == "account"


def test_records_that_do_not_parse_are_skipped_counted_and_never_stop_the_view(
    broker: BrokerProcess, service: ContextProcess
) -> None:
    producer = Producer({"bootstrap.servers": broker.bootstrap})
    bad: list[tuple[str, bytes | None, bytes | None]] = [
        ("support.tickets", b"t1", b"not json"),
        ("support.tickets", b"t2", b'{"account": {}}'),
        ("support.tickets", b"t3", None),  # a tombstone: no account id to find
        ("support.tickets", b"t4", b"[" * 100_000),
        ("crm.accounts", None, b'{"name": "keyless"}'),
        ("crm.accounts", b"\xff\xfe", b'{"name": "bad key"}'),
        ("billing.entitlements", b"e1", b'{"account_id": 3.5}'),
    ]
    for topic, key, value in bad:
        producer.produce(topic, key=key, value=value, partition=0)
    landed: list[int] = []
    producer.produce(
        "crm.accounts",
        key=b"a1",
        value=b'{"name": "Acme"}',
        partition=0,
        on_delivery=lambda error, message: landed.append(message.offset()),
    )
    producer.flush(TIMEOUT_S)
    client = ContextClient(service.url)
    after = client.get("account", "a1", min_offsets={("crm.accounts", 0): landed[0]})
    assert after.state == {"profile": {"name": "Acme"}}
    assert client.views()["views"]["account"]["skipped"] == {
        "value-not-json": 2,
        "no-entity-id": 2,
        "tombstone-without-key-id": 1,
        "no-key": 1,
        "key-not-utf8": 1,
    }
    assert service.process is not None and service.process.poll() is None


def test_an_entity_past_its_size_bound_takes_no_more_records(
    broker: BrokerProcess, service: ContextProcess
) -> None:
    """The tickets list keeps 1,000 items; at 4 KiB each an account's state would pass
    STATE_BYTES_MAX (900 KiB) after about 220: the records that would pass it are skipped and
    counted, the state stays within the bound, other entities go on."""
    producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5})
    ends: dict[tuple[str, int], int] = {}

    def delivered(error: Any, message: Any) -> None:
        assert error is None, error
        at = ("support.tickets", message.partition())
        ends[at] = max(ends.get(at, -1), message.offset())

    for n in range(400):
        value = {"account": {"id": "big"}, "n": n, "body": "x" * 4096}
        producer.produce(
            "support.tickets",
            key=str(n).encode(),
            value=json.dumps(value).encode(),
            on_delivery=delivered,
        )
        producer.poll(0)
    producer.produce(
        "support.tickets",
        key=b"small",
        value=b'{"account": {"id": "small"}}',
        on_delivery=delivered,
    )
    producer.flush(TIMEOUT_S)
    client = ContextClient(service.url)
    small = client.get("account", "small", min_offsets=ends, timeout_ms=20_000)
    assert small.state == {"tickets": [{"account": {"id": "small"}}]}
    big = client.get("account", "big")
    assert big.state is not None
    kept = len(big.state["tickets"])
    assert 200 < kept < 256
    assert len(json.dumps(big.state)) <= STATE_BYTES_MAX
    assert client.views()["views"]["account"]["skipped"] == {"state-too-large": 400 - kept}


def test_a_body_trickled_too_slowly_is_answered_408(service: ContextProcess) -> None:
    with socket.create_connection(("127.0.0.1", service.port), timeout=TIMEOUT_S) as sock:
        sock.sendall(
            b"POST /v1/views/account/get HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n"
            b'{"entity"'
        )
        began = SystemClock().monotonic_ms()
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
    waited_s = (SystemClock().monotonic_ms() - began) / 1000
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert b"/problems/body-timeout" in answer
    assert waited_s >= BODY_READ_S - 1
