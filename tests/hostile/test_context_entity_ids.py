"""Entity ids the context service's HTTP API cannot store or look up: JSON's `\\ud800`
escapes decode to a lone surrogate, which has no UTF-8 form (SQLite, the partitioner and
a source key all need one). Refused as a bad request naming the entity, never a 500."""

from __future__ import annotations

import http.client
import json
from typing import Any

from contextplane.services.context.client import ContextClient
from tests.support.context import (  # noqa: F401 - fixtures
    TIMEOUT_S,
    ContextProcess,
    broker_fixture,
    service_fixture,
    views_fixture,
)


def post(service: ContextProcess, raw: bytes) -> tuple[int, dict[str, Any]]:
    connection = http.client.HTTPConnection("127.0.0.1", service.port, timeout=TIMEOUT_S)
    try:
        connection.request("POST", "/v1/views/account/get", body=raw)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def test_an_entity_id_without_a_utf8_form_is_a_bad_request(service: ContextProcess) -> None:
    for raw in (
        b'{"entity": "\\ud800"}',
        b'{"entity": "a\\udfff"}',
        b'{"entity": "\\ud800", "as_of": {"timestamp_ms": 0}}',
        b'{"entity": "\\ud800", "as_of": {"crm.accounts": {"0": 0}}}',
    ):
        status, problem = post(service, raw)
        assert (status, problem.get("type")) == (400, "/problems/bad-request"), (raw, problem)
        assert "UTF-8" in problem["detail"]
    # A topic the same way: the problem naming it is still JSON a client can read.
    for raw in (
        b'{"entity": "a1", "min_offsets": {"\\ud800": {"0": 1}}}',
        b'{"entity": "a1", "as_of": {"\\ud800": {"0": 1}}}',
        b'{"entity": "a1", "min_offsets": {"crm.accounts": {"\\ud800": 1}}}',
    ):
        status, problem = post(service, raw)
        assert status == 400, (raw, problem)
    # A surrogate pair is one character: an ordinary id.
    status, problem = post(service, b'{"entity": "\\ud83d\\ude00"}')
    assert status == 200, problem
    assert problem["entity"] == "\U0001f600"
    assert ContextClient(service.url).get("account", "a1").view == "account"
