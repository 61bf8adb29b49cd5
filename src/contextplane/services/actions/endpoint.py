"""One call of a tool's HTTP endpoint: the arguments POSTed as JSON with the
Idempotency-Key header, within the tool's time bound, the answer's body read up to a
bound. No redirects are followed (a POST that moves is an answer, recorded as such).

What the caller needs to know is whether the effect may have happened: `NotSent` (the
connection was never made: it did not), `Interrupted` (the request may have reached the
endpoint: it may have), or an answer.
"""

from __future__ import annotations

import http.client
import json
import ssl
import urllib.parse
from dataclasses import dataclass
from typing import Any

# An answer's body kept in the ledger, at most; longer is cut and flagged.
RESULT_BYTES_MAX = 64 * 1024


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any  # JSON when the body is JSON, else its text
    truncated: bool


@dataclass(frozen=True)
class NotSent:
    reason: str


@dataclass(frozen=True)
class Interrupted:
    reason: str


def call(
    endpoint: str,
    arguments: Any,
    idempotency_key: str,
    timeout_s: float,
    trace_headers: dict[str, str] | None = None,
) -> Answer | NotSent | Interrupted:
    """`trace_headers`: the W3C trace context of the call's span, when traced."""
    url = urllib.parse.urlsplit(endpoint)
    path = (url.path or "/") + (f"?{url.query}" if url.query else "")
    connection: http.client.HTTPConnection
    if url.scheme == "https":
        connection = http.client.HTTPSConnection(
            url.hostname or "", url.port, timeout=timeout_s, context=ssl.create_default_context()
        )
    else:
        connection = http.client.HTTPConnection(url.hostname or "", url.port, timeout=timeout_s)
    try:
        try:
            connection.connect()
        except OSError as exc:
            return NotSent(f"connecting to {endpoint}: {exc}")
        body = json.dumps(arguments).encode()
        try:
            connection.request(
                "POST",
                path,
                body=body,
                headers={
                    **(trace_headers or {}),
                    "Content-Type": "application/json",
                    "Idempotency-Key": idempotency_key,
                },
            )
            response = connection.getresponse()
            raw = response.read(RESULT_BYTES_MAX + 1)
        except (OSError, http.client.HTTPException) as exc:  # timeouts are OSErrors
            return Interrupted(f"calling {endpoint}: {exc or type(exc).__name__}")
        truncated = len(raw) > RESULT_BYTES_MAX
        raw = raw[:RESULT_BYTES_MAX]
        return Answer(response.status, _body(raw, truncated), truncated)
    finally:
        connection.close()


def _body(raw: bytes, truncated: bool) -> Any:
    if not truncated:
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            pass
    return raw.decode(errors="replace")
