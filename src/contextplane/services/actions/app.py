"""The executor's HTTP read of the ledger (JSON; errors as RFC 9457 problem details).

GET /v1/ledger?key=K[&request_hash=H][&value_hash=V][&approver=P]
    {"key": K, "entry": the call's entry or null,
     "conflict": the conflict entry of request H under K, or null,
     "rejected": the rejection of the request record whose value hashes to V, or null,
     "approval": P's refused approval of request H under K, or null}
    404 (`not-found`) when the index holds none of them.
GET /metrics
    Prometheus's text format (`metrics.py`). Neither route authenticates: the port is
    bound on `--host`, 127.0.0.1 by default (RFC 0006, "Not built").

The key is a query parameter, not a path segment: an idempotency key may hold '/'.
"""

from __future__ import annotations

import logging

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from contextplane.services.actions import ledger
from contextplane.services.actions.ledger import LedgerIndex
from contextplane.services.actions.metrics import ExecutorCounts, metrics
from contextplane.services.ascii_json import AsciiJSONResponse
from contextplane.services.context.app import ProblemResponse

log = logging.getLogger("contextplane.actions")


def _problem(status: int, kind: str, detail: str) -> Response:
    body = {"type": f"urn:contextplane:actions:{kind}", "title": kind, "status": status}
    body["detail"] = detail
    return ProblemResponse(body, status_code=status)


async def _entry(request: Request) -> Response:
    index: LedgerIndex = request.app.state.index
    key = request.query_params.get("key")
    if not key or len(key.encode()) > ledger.KEY_BYTES_MAX:
        return _problem(400, "bad-request", f"key: 1 to {ledger.KEY_BYTES_MAX} bytes")
    hash_ = request.query_params.get("request_hash")
    raw_hash = request.query_params.get("value_hash")
    entry = index.get(ledger.call_key(key))
    conflict = None if hash_ is None else index.get(ledger.conflict_key(key, hash_))
    rejected = None if raw_hash is None else index.get(ledger.rejected_key_of(key, raw_hash))
    approver = request.query_params.get("approver")
    approval = None
    if approver is not None and hash_ is not None:
        approval = index.get(ledger.approval_key(key, approver, hash_))
    if entry is None and conflict is None and rejected is None and approval is None:
        return _problem(404, "not-found", f"the ledger has no entry for key {key!r}")
    found = {"entry": entry, "conflict": conflict, "rejected": rejected, "approval": approval}
    # Entries quote the request: its text may have no UTF-8 form (a lone surrogate).
    return AsciiJSONResponse({"key": key, **found})


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return _problem(exc.status_code, "http", str(exc.detail))


async def _server_error(request: Request, exc: Exception) -> Response:
    log.exception("request %s %s failed", request.method, request.url.path)
    return _problem(500, "internal", "the request failed; see the executor's log")


def build_app(index: LedgerIndex, counts: ExecutorCounts) -> Starlette:
    app = Starlette(
        routes=[
            Route("/v1/ledger", _entry, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
        ],
        exception_handlers={HTTPException: _http_error, Exception: _server_error},
    )
    app.state.index = index
    app.state.counts = counts
    return app
