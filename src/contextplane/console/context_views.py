"""The console's view freshness page: what the context service (`contextplane context`, a
process of its own) reports at `GET /v1/views` — each view's freshness per source
partition, its target and whether it is stale, and the records it skipped — asked at
`console.context.url`.

One GET on the broker's event loop, HTTP/1.1 with `Connection: close`, bounded in all:
`ANSWER_S` from connecting to the last byte (a service that trickles its answer is cut
off), at most `ANSWER_BYTES_MAX` read, JSON decoded in a worker thread, views and
partitions shown up to `VIEWS_MAX` and `PARTITIONS_MAX`, names cut at `FIELD_CHARS_MAX`.
Any failure is the page's one line naming the URL and what went wrong.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

ANSWER_S = 5.0
ANSWER_BYTES_MAX = 8 * 1024 * 1024
VIEWS_MAX = 500
PARTITIONS_MAX = 1000  # per view
FIELD_CHARS_MAX = 200
PATH = "/v1/views"


class ViewsUnavailable(Exception):
    """The service did not answer with its views (the message says why)."""


@dataclass(frozen=True, slots=True)
class PartitionRow:
    topic: str
    partition: int | None
    position: int | None
    high_watermark: int | None
    lag: int | None


@dataclass(frozen=True, slots=True)
class ViewRow:
    name: str
    lag: int | None
    age_ms: int | None
    newest_event_ms: int | None
    target_ms: int | None
    stale: bool
    partitions: list[PartitionRow]
    partitions_total: int
    skipped: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ServiceViews:
    applied_records: int | None
    failure: str | None
    views: list[ViewRow]
    views_total: int


async def service_views(url: str) -> ServiceViews:
    """The service's views; ViewsUnavailable naming `url` and the problem."""
    target = url.rstrip("/") + PATH
    try:
        async with asyncio.timeout(ANSWER_S):
            raw = await _get(target)
    except TimeoutError:
        raise ViewsUnavailable(f"{target}: no whole answer within {ANSWER_S:g} s") from None
    except (OSError, ValueError) as exc:
        raise ViewsUnavailable(f"{target}: {exc or type(exc).__name__}") from None
    return await asyncio.to_thread(_decode, target, raw)


async def _get(target: str) -> bytes:
    parts = urlsplit(target)
    secure = parts.scheme == "https"
    host = parts.hostname or ""
    port = parts.port or (443 if secure else 80)
    context = ssl.create_default_context() if secure else None
    reader, writer = await asyncio.open_connection(host, port, ssl=context)
    try:
        authority = parts.netloc.rsplit("@", 1)[-1]
        writer.write(
            f"GET {parts.path} HTTP/1.1\r\nHost: {authority}\r\nAccept: application/json\r\n"
            "Connection: close\r\n\r\n".encode("ascii", "replace")
        )
        await writer.drain()
        answer = await reader.read(ANSWER_BYTES_MAX + 1)
        chunks = [answer]
        size = len(answer)
        while answer and size <= ANSWER_BYTES_MAX:
            answer = await reader.read(ANSWER_BYTES_MAX + 1 - size)
            chunks.append(answer)
            size += len(answer)
    finally:
        writer.close()
    if size > ANSWER_BYTES_MAX:
        raise ValueError(f"an answer of more than {ANSWER_BYTES_MAX:,} bytes")
    return b"".join(chunks)


def _decode(target: str, raw: bytes) -> ServiceViews:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = lines[0].split(" ", 2)
    if len(status) < 2 or not status[0].startswith("HTTP/1."):
        raise ViewsUnavailable(f"{target}: not an HTTP answer")
    if status[1] != "200":
        raise ViewsUnavailable(f"{target}: HTTP {_cut(' '.join(status[1:]))}")
    if any(line.lower().startswith("transfer-encoding:") for line in lines[1:]):
        raise ViewsUnavailable(f"{target}: a chunked answer (the context service sends a length)")
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        raise ViewsUnavailable(f"{target}: the answer is not JSON") from None
    if not isinstance(document, dict) or not isinstance(document.get("views"), dict):
        raise ViewsUnavailable(f"{target}: no 'views' in the answer (not a context service?)")
    views = [
        _view(str(name), view)
        for name, view in list(document["views"].items())[:VIEWS_MAX]
        if isinstance(view, dict)
    ]
    failure = document.get("failure")
    return ServiceViews(
        _int(document.get("applied_records")),
        None if failure is None else _cut(str(failure)),
        views,
        len(document["views"]),
    )


def _view(name: str, view: dict[str, Any]) -> ViewRow:
    fresh = view.get("freshness")
    fresh = fresh if isinstance(fresh, dict) else {}
    listed = fresh.get("partitions")
    listed = listed if isinstance(listed, list) else []
    skipped = view.get("skipped")
    skipped = skipped if isinstance(skipped, dict) else {}
    return ViewRow(
        _cut(name),
        _int(fresh.get("lag")),
        _int(fresh.get("age_ms")),
        _int(fresh.get("newest_event_ms")),
        _int(fresh.get("target_ms")),
        fresh.get("stale") is True,
        [
            PartitionRow(
                _cut(str(p.get("topic"))),
                _int(p.get("partition")),
                _int(p.get("position")),
                _int(p.get("high_watermark")),
                _int(p.get("lag")),
            )
            for p in listed[:PARTITIONS_MAX]
            if isinstance(p, dict)
        ],
        len(listed),
        {_cut(str(k)): v for k, v in list(skipped.items())[:100] if _int(v) is not None},
    )


def _int(value: Any) -> int | None:
    return value if type(value) is int else None


def _cut(text: str) -> str:
    return text if len(text) <= FIELD_CHARS_MAX else text[: FIELD_CHARS_MAX - 1] + "…"
