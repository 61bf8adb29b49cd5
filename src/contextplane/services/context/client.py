"""The copilot side of the context service: one call per HTTP route, typed answers, the
standard library's HTTP client (nothing to install beyond contextplane).

    client = ContextClient("http://127.0.0.1:8090")
    account = client.get("account", "a1", min_offsets={("crm.accounts", 0): 41})
    account.state, account.freshness.age_ms, account.freshness.lag
    then = client.get("account", "a1", as_of={("crm.accounts", 0): 42})  # point in time
    then = client.get("account", "a1", as_of_ms=1767225600000)  # at a time; then.as_of
    # is the vector it resolved to: as_of=then.as_of asks the same again exactly

A fence's offset is that of a record the caller produced (its delivery report's offset):
the answer reflects that record or anything newer.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass
from typing import Any

from contextplane.clock import SystemClock
from contextplane.services.context.freshness import Freshness, PartitionFreshness
from contextplane.services.context.merge import Origin, RecordAt
from contextplane.services.trace import current

# The HTTP exchange's own bound, beyond the fence's wait.
HTTP_SLACK_S = 10.0
# How long an as_of read may take at the service, at most (its own bound decides).
AS_OF_WAIT_S = 60.0
# An answer is one entity's state (at most 900 KiB stored) and a line per source
# partition: a reply past this is not read into memory.
REPLY_BYTES_MAX = 8 * 1024 * 1024
BAD_REPLY = "/problems/bad-reply"
UNREACHABLE = "/problems/unreachable"
_CLOCK = SystemClock()


class ContextClientError(Exception):
    """The service answered with a problem (`status`, `kind` as in its errors.py)."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        super().__init__(problem.get("detail") or problem.get("title") or f"HTTP {status}")
        self.status = status
        self.kind = str(problem.get("type", "")).rsplit("/", 1)[-1]
        self.problem = problem


@dataclass(frozen=True)
class EntityContext:
    view: str
    entity: str
    found: bool
    state: dict[str, Any] | None
    changed_by: Origin | None
    freshness: Freshness
    # A point-in-time answer: the whole vector it answers for (partitions left out of the
    # request as 0); its freshness has positions only (no lag, no age).
    as_of: dict[tuple[str, int], int] | None = None
    as_of_ms: int | None = None  # the timestamp asked, when the point in time was one
    # The changelog record the state was answered from (None from a point-in-time read,
    # or a service that does not name it).
    changelog: RecordAt | None = None


class ContextClient:
    def __init__(self, url: str, timeout_s: float = 10.0) -> None:
        self._url = url.rstrip("/")
        self._timeout_s = timeout_s

    def get(
        self,
        view: str,
        entity: str,
        min_offsets: dict[tuple[str, int], int] | None = None,
        timeout_ms: int | None = None,
        as_of: dict[tuple[str, int], int] | None = None,
        as_of_ms: int | None = None,
    ) -> EntityContext:
        """The entity's state and freshness; with `min_offsets`, once the view applied the
        record at each (topic, partition) offset (waiting at most `timeout_ms`); with
        `as_of`, the state once exactly the records below each offset were applied (a
        partition left out counts as 0); with `as_of_ms` (ms since the epoch, in the
        past), once every record stamped up to it was applied and none after, its
        vector in the answer's `as_of`."""
        decision = current.current()
        if decision is None:
            return self._get(view, entity, min_offsets, timeout_ms, as_of, as_of_ms)
        # Inside `with decisions.decision()`: the read is recorded on it, a failed one too.
        try:
            answer = self._get(view, entity, min_offsets, timeout_ms, as_of, as_of_ms)
        except (ContextClientError, OSError) as exc:
            decision.note_read({"view": view, "entity": entity, "error": str(exc)})
            raise
        decision.note_read(read_record(answer))
        return answer

    def _get(
        self,
        view: str,
        entity: str,
        min_offsets: dict[tuple[str, int], int] | None,
        timeout_ms: int | None,
        as_of: dict[tuple[str, int], int] | None,
        as_of_ms: int | None,
    ) -> EntityContext:
        for name, text in (("view", view), ("entity", entity)):
            if not text.isascii() and not _utf8(text):  # a lone surrogate: JSON's "\ud800"
                problem = {"type": "/problems/bad-request", "detail": f"{name} {text!r}: no UTF-8"}
                raise ContextClientError(400, problem)
        past = as_of is not None or as_of_ms is not None
        if min_offsets is None and timeout_ms is None and not past:
            path = f"/v1/views/{_quote(view)}/entities/{_quote(entity)}"
            return _answer(self._call("GET", path, None, self._timeout_s))
        body: dict[str, Any] = {"entity": entity}
        if min_offsets:
            body["min_offsets"] = _vector_json(min_offsets)
        if as_of is not None:
            body["as_of"] = _vector_json(as_of)
        if as_of_ms is not None:  # with as_of too: the service refuses both (400)
            body["as_of"] = {**body.get("as_of", {}), "timestamp_ms": as_of_ms}
        if timeout_ms is not None:
            body["timeout_ms"] = timeout_ms
        # An as_of read is bounded by the service's own timeout (10 s unless set).
        wait_s = (timeout_ms if timeout_ms is not None else 5_000) / 1000
        if past:
            wait_s = max(wait_s, AS_OF_WAIT_S)
        answer = self._call("POST", f"/v1/views/{_quote(view)}/get", body, wait_s + HTTP_SLACK_S)
        return _answer(answer)

    def views(self) -> dict[str, Any]:
        """Each view's freshness and skipped records, as the service reports them."""
        answer: dict[str, Any] = self._call("GET", "/v1/views", None, self._timeout_s)
        return answer

    def _call(self, method: str, path: str, body: Any, timeout_s: float) -> Any:
        try:
            return self._call_at(self._url, method, path, body, timeout_s)
        except ContextClientError as exc:
            # A partitioned instance that does not own the entity names the one that
            # does: asked once more there (never further: a second 421 is raised).
            owner = exc.problem.get("owner") if exc.kind == "not-owner" else None
            url = owner.get("url") if isinstance(owner, dict) else None
            origin = _followable(url, self._url)
            if origin is None:
                raise
            return self._call_at(origin, method, path, body, timeout_s)

    def _call_at(self, base: str, method: str, path: str, body: Any, timeout_s: float) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(base + path, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        deadline = _CLOCK.monotonic_ms() + int(timeout_s * 1000)
        try:
            with _OPENER.open(request, timeout=timeout_s) as response:
                raw = _reply(response, deadline)
                try:
                    return json.loads(raw)
                except ValueError:
                    detail = f"the reply is not JSON: {raw[:80]!r}"
                    raise ContextClientError(502, {"type": BAD_REPLY, "detail": detail}) from None
        except urllib.error.HTTPError as exc:
            raw = _reply(exc.fp, deadline)
            try:
                problem = json.loads(raw)
            except ValueError:
                problem = {"detail": raw.decode(errors="replace")}
            raise ContextClientError(exc.code, problem) from None
        except urllib.error.URLError as exc:
            # No answer at all (refused, no route, a name that does not resolve): the
            # caller's one error type, naming the service it could not reach.
            detail = f"the context service at {base} did not answer: {exc.reason}"
            raise ContextClientError(503, {"type": UNREACHABLE, "detail": detail}) from None


def _utf8(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _answer(raw: Any) -> EntityContext:
    """The reply as an answer; one that is not (a server that is not a context service
    of this version) is a 502 `bad-reply` the caller handles like any refusal."""
    try:
        return _entity(raw)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        detail = f"the reply is not an entity answer: {type(exc).__name__} {exc}"
        raise ContextClientError(502, {"type": BAD_REPLY, "detail": detail[:200]}) from None


def _reply(response: Any, deadline: int) -> bytes:
    """The reply's body, read to REPLY_BYTES_MAX by the call's deadline: a server that
    streams without end, or a byte at a time (each within the socket's timeout), is a
    504 `reply-too-large` / `reply-too-slow`, not memory or a caller held for ever."""
    chunks: list[bytes] = []
    size = 0
    while chunk := response.read1(64 * 1024):
        size += len(chunk)
        if size > REPLY_BYTES_MAX:
            raise ContextClientError(
                502,
                {
                    "type": "/problems/reply-too-large",
                    "detail": f"a reply past {REPLY_BYTES_MAX} bytes",
                },
            )
        if _CLOCK.monotonic_ms() > deadline:
            raise ContextClientError(
                504, {"type": "/problems/reply-too-slow", "detail": "the reply did not end in time"}
            )
        chunks.append(chunk)
    return b"".join(chunks)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """The service never answers 3xx: one is an error, not a place to send the request."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


def _followable(url: Any, configured: str) -> str | None:
    """The origin a 421 names, when the SDK may ask there: http(s)://host[:port] only
    (no credentials, path or query to smuggle another host in), and never plain http
    when the configured service is https."""
    if not isinstance(url, str) or not url.isascii() or not url.isprintable() or " " in url:
        return None
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a port out of range
    except ValueError:
        return None
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or "@" in parts.netloc
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
    ):
        return None
    if parts.scheme == "http" and configured.startswith("https://"):
        return None
    return f"{parts.scheme}://{parts.netloc}"


def read_record(answer: EntityContext) -> dict[str, Any]:
    """What a decision records of a read (trace/event.py): the positions and freshness
    the answer reported, and the source record that last changed the entity."""
    fresh = answer.freshness
    read: dict[str, Any] = {
        "view": answer.view,
        "entity": answer.entity,
        "found": answer.found,
        "positions": [
            {"topic": p.topic, "partition": p.partition, "position": p.position}
            for p in fresh.partitions
        ],
        "age_ms": fresh.age_ms,
        "lag": fresh.lag,
        "stale": fresh.stale,
    }
    if answer.changed_by is not None:
        read["changed_by"] = asdict(answer.changed_by)
    if answer.changelog is not None:
        read["changelog"] = asdict(answer.changelog)
    if answer.as_of is not None:
        read["as_of"] = _vector_json(answer.as_of)
    return read


def _vector_json(vector: dict[tuple[str, int], int]) -> dict[str, dict[str, int]]:
    found: dict[str, dict[str, int]] = {}
    for (topic, partition), offset in vector.items():
        found.setdefault(topic, {})[str(partition)] = offset
    return found


def _quote(segment: str) -> str:
    return urllib.parse.quote(segment, safe="")


def _entity(raw: dict[str, Any]) -> EntityContext:
    fresh = raw["freshness"]
    changed = raw.get("changed_by")
    as_of = raw.get("as_of")
    return EntityContext(
        view=raw["view"],
        entity=raw["entity"],
        found=raw["found"],
        state=raw["state"],
        changed_by=None if changed is None else Origin(**changed),
        freshness=Freshness(
            age_ms=fresh["age_ms"],
            newest_event_ms=fresh["newest_event_ms"],
            lag=fresh["lag"],
            partitions=tuple(PartitionFreshness(**p) for p in fresh["partitions"]),
            target_ms=fresh["target_ms"],
            stale=fresh["stale"],
        ),
        as_of=None
        if as_of is None
        else {(t, int(p)): at for t, offsets in as_of.items() for p, at in offsets.items()},
        as_of_ms=raw.get("as_of_ms"),
        changelog=_record_at(raw.get("changelog")),
    )


def _record_at(raw: Any) -> RecordAt | None:
    """The answer's changelog record, if it names one as this client reads it."""
    if not isinstance(raw, dict):
        return None
    topic, partition, offset = raw.get("topic"), raw.get("partition"), raw.get("offset")
    if isinstance(topic, str) and type(partition) is int and type(offset) is int:
        return RecordAt(topic, partition, offset)
    return None
